"""Unit tests: python -m unittest -v. They sign with a fresh secret of their own (no .env, no network)."""

import base64
import http.client
import json
import os
import tempfile
import threading
import time
import unittest
import uuid
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

from standardwebhooks import Webhook

import app

PLUGIN_ID = json.loads(app.MANIFEST_PATH.read_bytes())["id"]

# The response.submitted example of docs/plugin-authors.md, section 3.3.
SUBMITTED = {
    "data": {"response": {
        "answers": {"crop": {"choice": "maize"}, "farm": {"accuracy_m": 4.5, "latitude": -1.29, "longitude": 36.82},
                    "income": None, "name": {"text": "Amina Njeri"}, "notes": {"text": "Good harvest this year"}},
        "collector_id": "enumerator-42", "duration_ms": 93000, "form_id": "f-household-2026", "form_version": 1,
        "id": "r-0193a5b2", "locale": "sw-KE", "submitted_at": 1795341600000, "team_id": "acme"}},
    "datacontenttype": "application/json", "id": "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33", "source": "/collect/web",
    "specversion": "1.0", "subject": "f-household-2026", "teamid": "acme", "time": "2026-11-22T10:00:00Z",
    "type": "response.submitted",
}
FORM_CREATED = {"id": "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc34", "type": "form.created", "teamid": "acme",
                "specversion": "1.0", "source": "/core", "data": {"form": {"id": "f-household-2026"}}}


def greeted(greeting="Hello"):
    return {"type": f"{PLUGIN_ID}.greeted", "subject": "r-0193a5b2",
            "data": {"response_id": "r-0193a5b2", "form_id": "f-household-2026",
                     "greeting": f"{greeting} r-0193a5b2", "answers": 5}}


def fresh_secret():
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def signed_headers(secret, body, msg_id=None, timestamp=None):
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = datetime.fromtimestamp(int(time.time() if timestamp is None else timestamp), tz=timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode())}


class PluginTest(unittest.TestCase):
    def setUp(self):
        self.secret = fresh_secret()
        self.plugin = app.Plugin(self.secret, app.MANIFEST_PATH.read_bytes())

    def call(self, path, payload=None, *, raw=None, sign=True, msg_id=None, timestamp=None,
             content_type="application/json", team="acme", method="POST"):
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"content-type": content_type, "switchyard-team": team}
        if sign:
            headers.update(signed_headers(self.secret, body, msg_id, timestamp))
        answer = self.plugin.handle(method, path, headers, body)
        return answer.status, json.loads(answer.body)

    def test_standard_webhooks_test_vector(self):
        when = datetime.fromtimestamp(1649367553, tz=timezone.utc)
        signature = Webhook("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", when, '{"email":"test@example.com","username":"test_user"}')
        self.assertEqual(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")

    def test_unsigned_calls_are_refused(self):
        for path, payload in [("/execute", SUBMITTED), ("/initialize", {"team_id": "acme", "config": {}}),
                              ("/actions/stats", {})]:
            status, answer = self.call(path, payload, sign=False)
            self.assertEqual(status, 401, path)
            self.assertIn("webhook-signature", answer["error"])
        self.assertEqual(self.plugin.counts, {})

    def test_wrong_stale_or_malformed_signatures_are_refused(self):
        body = json.dumps(SUBMITTED).encode()
        cases = {
            "another secret": signed_headers(fresh_secret(), body),
            "stale": signed_headers(self.secret, body, timestamp=time.time() - 600),
            "future": signed_headers(self.secret, body, timestamp=time.time() + 600),
            "malformed": {**signed_headers(self.secret, body), "webhook-signature": "v1"},
            "tampered body": signed_headers(self.secret, body.replace(b"maize", b"wheat")),
        }
        for case, headers in cases.items():
            answer = self.plugin.handle("POST", "/execute", headers, body)
            self.assertEqual(answer.status, 401, case)
            self.assertIn("bad signature", json.loads(answer.body)["error"], case)

    def test_response_submitted_is_greeted(self):
        self.assertEqual(self.call("/execute", SUBMITTED), (200, {"results": [greeted()]}))

    def test_response_updated_is_greeted_and_other_types_are_not(self):
        updated = {**SUBMITTED, "type": "response.updated",
                   "data": {**SUBMITTED["data"], "revision": 2, "updated_by": "u-1", "updated_at": 1795341700000}}
        self.assertEqual(self.call("/execute", updated), (200, {"results": [greeted()]}))
        self.assertEqual(self.call("/execute", FORM_CREATED), (200, {"results": []}))

    def test_a_repeated_webhook_id_gets_the_same_answer_without_the_work(self):
        first = self.call("/execute", SUBMITTED, msg_id=SUBMITTED["id"])
        self.call("/initialize", {"team_id": "acme", "config": {"greeting": "Changed"}})
        self.assertEqual(self.call("/execute", SUBMITTED, msg_id=SUBMITTED["id"]), first)
        self.assertEqual(self.call("/actions/stats", {})[1]["events"], 1)

    def test_a_batch_of_two_events(self):
        status, answer = self.call("/execute", [SUBMITTED, FORM_CREATED], content_type=app.BATCH_CONTENT_TYPE,
                                   msg_id="batch_" + "0" * 32)
        self.assertEqual(status, 200)
        self.assertEqual(answer, {"events": [
            {"id": SUBMITTED["id"], "outcome": "done", "results": [greeted()]},
            {"id": FORM_CREATED["id"], "outcome": "done", "results": []}]})
        # The same events again in another batch (another webhook-id): the same answers, no work.
        again = self.call("/execute", [FORM_CREATED, SUBMITTED], content_type=app.BATCH_CONTENT_TYPE)
        self.assertEqual(sorted(again[1]["events"], key=lambda e: e["id"]), answer["events"])
        self.assertEqual(self.call("/actions/stats", {})[1], {"team_id": "acme", "events": 2, "greeted": 1,
                                                              "configured": False})

    def test_a_malformed_batch_element_is_dead_lettered(self):
        broken = {"id": "e-broken", "teamid": "acme"}  # no type
        _, answer = self.call("/execute", [broken, SUBMITTED], content_type=app.BATCH_CONTENT_TYPE)
        self.assertEqual(answer["events"][0], {"id": "e-broken", "outcome": "dead_letter",
                                               "reason": "the event has no type"})
        self.assertEqual(answer["events"][1]["outcome"], "done")

    def test_malformed_events_are_dead_lettered_with_200(self):
        self.assertEqual(self.call("/execute", raw=b"not json")[0], 200)
        self.assertEqual(self.call("/execute", raw=b"not json")[1]["outcome"], "dead_letter")
        self.assertEqual(self.call("/execute", {"type": "response.submitted"})[1],
                         {"outcome": "dead_letter", "reason": "the event has no id"})

    def test_initialize_stores_validates_and_removes_configs(self):
        self.assertEqual(self.call("/initialize", {"team_id": "acme", "config": {"greeting": 5}}),
                         (422, {"error": "greeting must be a string"}))
        config = {"team_id": "acme", "config": {"greeting": "Karibu", "api_key": "k-1"}}
        self.assertEqual(self.call("/initialize", config), (200, {}))
        self.assertEqual(self.call("/initialize", config), (200, {}))  # idempotent
        self.assertEqual(self.call("/execute", SUBMITTED), (200, {"results": [greeted("Karibu")]}))
        self.assertTrue(self.call("/actions/stats", {})[1]["configured"])
        self.assertEqual(self.call("/initialize", {"team_id": "acme", "config": None}), (200, {}))
        self.assertFalse(self.call("/actions/stats", {})[1]["configured"])

    def test_configs_are_per_installation(self):
        self.call("/initialize", {"team_id": "acme", "installation": "forms-bc", "config": {"greeting": "Hi"}})
        copy = {**SUBMITTED, "installation": "forms-bc"}
        self.assertEqual(self.call("/execute", copy)[1], {"results": [greeted("Hi")]})
        self.assertEqual(self.call("/execute", SUBMITTED)[1], {"results": [greeted("Hello")]})

    def test_routes(self):
        answer = self.plugin.handle("GET", "/metadata", {}, b"")
        self.assertEqual((answer.status, answer.body), (200, app.MANIFEST_PATH.read_bytes()))
        self.assertEqual(self.plugin.handle("GET", "/nowhere", {}, b"").status, 404)
        self.assertEqual(self.plugin.handle("GET", "/execute", {}, b"").status, 405)
        self.assertEqual(self.plugin.handle("POST", "/metadata", {}, b"").status, 405)
        self.assertEqual(self.call("/actions/unknown", {})[0], 404)


class HttpTest(unittest.TestCase):
    """The same plugin behind the real HTTP server, on a free port."""

    def test_over_http(self):
        self.enterContext(mock.patch.object(app.Handler, "log_message"))  # quiet access log
        secret = fresh_secret()
        server = app.serve(app.Plugin(secret, app.MANIFEST_PATH.read_bytes()), "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        self.addCleanup(connection.close)

        connection.request("GET", "/metadata")
        answer = connection.getresponse()
        self.assertEqual((answer.status, answer.read()), (200, app.MANIFEST_PATH.read_bytes()))
        self.assertEqual(answer.getheader("content-type"), "application/json")

        body = json.dumps(SUBMITTED, separators=(",", ":")).encode()
        for headers, status in [({}, 401), (signed_headers(secret, body), 200)]:  # one connection, kept alive
            connection.request("POST", "/execute", body, {"content-type": "application/json", **headers})
            answer = connection.getresponse()
            self.assertEqual(answer.status, status)
            self.assertEqual(answer.getheader("content-type"), "application/json")
            if status == 200:
                self.assertEqual(json.loads(answer.read()), {"results": [greeted()]})
            else:
                answer.read()


class DotenvTest(unittest.TestCase):
    def test_dotenv_never_overrides_the_environment(self):
        with tempfile.TemporaryDirectory() as directory, mock.patch.dict(os.environ, {"KEEP": "env"}):
            path = Path(directory, ".env")
            path.write_text("# comment\nKEEP=file\nNEW_ONE='quoted'\n\nnot a pair\n")
            app.load_dotenv(path)
            self.assertEqual((os.environ["KEEP"], os.environ["NEW_ONE"]), ("env", "quoted"))


if __name__ == "__main__":
    unittest.main()
