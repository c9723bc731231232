#!/usr/bin/env python3
"""wordcount: a minimal Switchyard plugin service, run behind `switchyard-plugin-bridge`.

It subscribes to `response.submitted`, counts the words of each response's text answers, publishes one
result per response (`wordcount.counted`, which the bridge writes to `core.plugin-results` as
`switchyard.plugin.wordcount.counted`), keeps per-team totals in memory and serves them as the action
`stats`. The contract it implements is docs/plugin-authors.md; this file is its smallest complete example.

    python3 wordcount_plugin.py                    # http://127.0.0.1:8095
    python3 wordcount_plugin.py --port 9000
    python3 wordcount_plugin.py --print-manifest   # the manifest that GET /metadata serves
    python3 wordcount_plugin.py --self-test        # the Standard Webhooks test vector, counting, a live round trip

Signatures. The bridge and the registry's action gateway sign every POST with the plugin's Standard
Webhooks secret (`whsec_...`). The registry derives that secret from its master key and the plugin id and
returns it in the registration answer: the bridge registers the plugin at start and signs with it, but does
not pass it on to this service. Give the service the same secret, preferably through the environment
variable WORDCOUNT_SIGNING_SECRET (or `--secret`, which other users of the machine can see in `ps`). Without
a secret the service skips verification and says so loudly: fine on a laptop, never in production.

Python 3.11+, standard library only. State (configs, totals, the de-duplication memory) lives in this
process: a real plugin keeps it in a database shared by its replicas.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PLUGIN_ID = "wordcount"
MANIFEST: dict[str, Any] = {
    "id": PLUGIN_ID,
    "name": "Word count",
    "description": "Counts the words of the text answers of every submitted response.",
    "version": "1.0.0",
    "events": ["response.submitted"],
    "actions": ["stats"],
    "config_schema": {
        "type": "object",
        "properties": {
            "min_words": {
                "type": "integer",
                "minimum": 0,
                "default": 3,
                "description": "Responses with fewer words are reported as below_minimum.",
            },
            # A secret: the registry never returns it, but the plugin receives it in POST /initialize.
            "api_key": {"type": "string", "writeOnly": True, "description": "Demonstrates a secret."},
        },
        "additionalProperties": False,
    },
}
DEFAULT_MIN_WORDS = 3
TOLERANCE_SECS = 5 * 60  # Standard Webhooks: accept timestamps within 5 minutes of our clock.
MAX_BODY_BYTES = 1 << 20  # The bridge sends one event; 1 MiB is plenty.
SEEN_LIMIT = 10_000  # Answers remembered for de-duplication (most recent first out).


# --- Standard Webhooks ------------------------------------------------------------------------------------


class SignatureError(Exception):
    """The request is not signed with our secret (or not recently)."""


def parse_secret(text: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret: the base64-decoded part after the prefix."""
    text = text.strip()
    if not text.startswith("whsec_"):
        raise ValueError('the signing secret must start with "whsec_"')
    try:
        key = base64.b64decode(text[len("whsec_"):], validate=True)
    except binascii.Error as error:
        raise ValueError("the signing secret is not base64 after whsec_") from error
    if not 24 <= len(key) <= 64:
        raise ValueError(f"the signing secret decodes to {len(key)} bytes; 24 to 64 are allowed")
    return key


def sign(key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """One signature entry, `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(key: bytes, msg_id: str, timestamp: str, signatures: str, body: bytes, now: float | None = None) -> None:
    """Raises SignatureError unless the timestamp is within the tolerance and any `v1,` entry matches."""
    if not msg_id or not timestamp or not signatures:
        raise SignatureError("webhook-id, webhook-timestamp and webhook-signature are required")
    try:
        ts = int(timestamp.strip())
    except ValueError:
        raise SignatureError("webhook-timestamp is not whole Unix seconds") from None
    now = time.time() if now is None else now
    if abs(now - ts) > TOLERANCE_SECS:
        raise SignatureError("webhook-timestamp is more than 5 minutes away from our clock")
    expected = sign(key, msg_id, ts, body).encode()
    matched = False
    for entry in signatures.split():  # several entries while a secret is rotated; check them all
        if entry.startswith("v1,"):
            matched |= hmac.compare_digest(entry.encode(), expected)  # constant time
    if not matched:
        raise SignatureError("no v1 signature matches")


# --- The plugin's logic -----------------------------------------------------------------------------------


class BadEvent(ValueError):
    """The event can never be processed: the bridge should dead-letter it."""


def count_words(text: str) -> int:
    """Words are runs of non-whitespace characters."""
    return len(text.split())


def response_words(data: Any) -> tuple[str, int]:
    """The response id and the words of its text answers (`{"text": ...}`); BadEvent if malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
        raise BadEvent("data.response is missing or not an object")
    response = data["response"]
    response_id = response.get("id")
    if not isinstance(response_id, str) or not response_id:
        raise BadEvent("data.response.id is missing or not a string")
    answers = response.get("answers")
    if not isinstance(answers, dict):
        raise BadEvent("data.response.answers is missing or not an object")
    words = 0
    for answer in answers.values():  # None = a skipped question; other kinds carry no "text"
        if isinstance(answer, dict) and isinstance(answer.get("text"), str):
            words += count_words(answer["text"])
    return response_id, words


class State:
    """Everything the service remembers. One lock: the bridge sends one event per team at a time, but
    several teams at once, and (rarely, around rebalances) the same event twice at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.configs: dict[str, dict[str, Any]] = {}
        self.totals: dict[str, dict[str, int]] = {}
        self.seen: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def initialize(self, team: str, config: dict[str, Any] | None) -> None:
        with self.lock:
            if config is None:
                self.configs.pop(team, None)
            else:
                self.configs[team] = config

    def execute(self, event_id: str, team: str, data: Any) -> dict[str, Any]:
        with self.lock:
            if event_id in self.seen:  # a redelivery: the same answer, nothing counted twice
                self.seen.move_to_end(event_id)
                return self.seen[event_id]
            response_id, words = response_words(data)
            min_words = self.configs.get(team, {}).get("min_words", DEFAULT_MIN_WORDS)
            below = words < min_words
            totals = self.totals.setdefault(team, {"responses": 0, "words": 0, "below_minimum": 0})
            totals["responses"] += 1
            totals["words"] += words
            totals["below_minimum"] += int(below)
            answer = {
                "results": [
                    {
                        "type": "wordcount.counted",
                        "subject": response_id,
                        "data": {"response_id": response_id, "words": words, "below_minimum": below},
                    }
                ]
            }
            self.seen[event_id] = answer
            if len(self.seen) > SEEN_LIMIT:
                self.seen.popitem(last=False)
            return answer

    def stats(self, team: str) -> dict[str, Any]:
        with self.lock:
            totals = dict(self.totals.get(team, {"responses": 0, "words": 0, "below_minimum": 0}))
            config = self.configs.get(team)
            return {
                "team_id": team,
                **totals,
                "min_words": (config or {}).get("min_words", DEFAULT_MIN_WORDS),
                "configured": config is not None,
                "api_key_set": bool((config or {}).get("api_key")),  # never the secret itself
            }


def check_config(config: Any) -> str | None:
    """Why a config cannot be applied, or None. The registry validated it against config_schema already;
    this is defence in depth (a refusal dead-letters the team's events as config_rejected)."""
    if config is None:
        return None
    if not isinstance(config, dict):
        return "the config must be an object"
    min_words = config.get("min_words", DEFAULT_MIN_WORDS)
    if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words < 0:
        return "min_words must be an integer >= 0"
    if "api_key" in config and not isinstance(config["api_key"], (str, type(None))):
        return "api_key must be a string"
    return None


# --- HTTP -------------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "wordcount/1.0"
    protocol_version = "HTTP/1.1"  # keep-alive: the bridge reuses connections

    # Set on the class by make_server().
    state: State
    key: bytes | None
    quiet = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if not self.quiet:
            sys.stderr.write(f"wordcount: {self.address_string()} {format % args}\n")  # never bodies: secrets

    def reply(self, status: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802
        with self.server.busy:  # type: ignore[attr-defined]
            self.get()

    def do_POST(self) -> None:  # noqa: N802
        with self.server.busy:  # type: ignore[attr-defined]
            self.post()

    def get(self) -> None:
        if self.path == "/metadata":
            self.reply(200, MANIFEST)
        elif self.path == "/healthz":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": f"no route GET {self.path}"})

    def read_signed_body(self) -> bytes | None:
        """The raw body, verified when a secret is set. Answers the request itself and returns None when
        it cannot be accepted."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self.reply(413, {"error": "the body is too large or its length is unknown"})
            return None
        body = self.rfile.read(length)
        if self.key is not None:
            try:
                verify(
                    self.key,
                    self.headers.get("webhook-id", ""),
                    self.headers.get("webhook-timestamp", ""),
                    self.headers.get("webhook-signature", ""),
                    body,
                )
            except SignatureError as error:
                # A 4xx: the bridge dead-letters the event (plugin_dead_letter). Right for a forgery;
                # if it happens to real events, our secret is stale (see docs/plugin-authors.md).
                self.reply(401, {"error": f"bad signature: {error}"})
                return None
        return body

    def post(self) -> None:
        routes = {"/initialize": self.initialize, "/execute": self.execute, "/actions/stats": self.stats}
        route = routes.get(self.path)
        if route is None:
            self.close_connection = True  # the body is left unread: do not reuse the connection
            self.reply(404, {"error": f"no route POST {self.path}"})
            return
        body = self.read_signed_body()
        if body is not None:
            route(body)

    def initialize(self, body: bytes) -> None:
        try:
            request = json.loads(body)
            team, config = request["team_id"], request["config"]
        except (ValueError, TypeError, KeyError):
            self.reply(400, {"error": 'the body must be {"team_id": ..., "config": ...}'})
            return
        if not isinstance(team, str) or not team:
            self.reply(400, {"error": "team_id must be a non-empty string"})
            return
        problem = check_config(config)
        if problem is not None:
            # A 4xx refuses the config: the bridge dead-letters the team's events (config_rejected),
            # asking again before each of them, until a config is accepted.
            self.reply(422, {"error": problem})
            return
        self.state.initialize(team, config)
        self.reply(200, {"applied": config is not None})

    def execute(self, body: bytes) -> None:
        try:
            event = json.loads(body)
            if not isinstance(event, dict):
                raise BadEvent("the body is not a JSON object")
            # webhook-id is the event's id; the body's "id" is the same value (and present even when
            # the bridge runs without a signing secret and sends no webhook-* headers).
            event_id = self.headers.get("webhook-id") or event.get("id")
            team = self.headers.get("switchyard-team") or event.get("teamid")
            if not isinstance(event_id, str) or not event_id:
                raise BadEvent("the event has no id")
            if not isinstance(team, str) or not team:
                raise BadEvent("the event has no team")
            if event.get("type") != "response.submitted":
                self.reply(200, {"results": []})  # not ours: nothing to do (the manifest asks for none)
                return
            answer = self.state.execute(event_id, team, event.get("data"))
        except (ValueError, BadEvent) as error:  # json.JSONDecodeError is a ValueError
            # Retrying cannot fix a malformed event: ask the bridge to dead-letter it now.
            self.reply(200, {"outcome": "dead_letter", "reason": f"malformed event: {error}"})
            return
        self.reply(200, answer)

    def stats(self, body: bytes) -> None:
        team = self.headers.get("switchyard-team", "")
        if not team:
            self.reply(400, {"error": "the switchyard-team header is required"})
            return
        self.reply(200, self.state.stats(team))


class Busy:
    """Counts requests in progress, so that shutdown can wait for them (and not for idle keep-alive
    connections, which the bridge holds open)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.active = 0

    def __enter__(self) -> None:
        with self.cond:
            self.active += 1

    def __exit__(self, *_: Any) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.active == 0, timeout)


def make_server(host: str, port: int, key: bytes | None, quiet: bool = False) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"state": State(), "key": key, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)  # one thread per connection, daemon threads
    server.busy = Busy()  # type: ignore[attr-defined]
    return server


def serve(host: str, port: int, key: bytes | None) -> int:
    if key is None:
        bar = "!" * 78
        sys.stderr.write(
            f"{bar}\nwordcount: WARNING: no signing secret (WORDCOUNT_SIGNING_SECRET or --secret).\n"
            "wordcount: Signatures are NOT verified: anyone who can reach this port can call it.\n"
            f"wordcount: Use this only for local development.\n{bar}\n"
        )
    server = make_server(host, port, key)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    print(f"wordcount plugin listening on http://{host}:{server.server_address[1]}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()  # stop accepting connections
    if not server.busy.wait_idle(10.0):  # type: ignore[attr-defined]
        sys.stderr.write("wordcount: requests still in progress after 10 s; stopping anyway\n")
    server.server_close()  # idle keep-alive connections die with their daemon threads
    sys.stderr.write("wordcount: stopped\n")
    return 0


# --- Self-test --------------------------------------------------------------------------------------------


def self_test() -> int:
    import urllib.error
    import urllib.request

    failures = 0

    def check(name: str, ok: bool) -> None:
        nonlocal failures
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        failures += not ok

    # 1. The Standard Webhooks test vector.
    secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
    msg_id, ts = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553
    body = b'{"email":"test@example.com","username":"test_user"}'
    expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    key = parse_secret(secret)
    check("test vector: signature", sign(key, msg_id, ts, body) == expected)

    def verifies(signatures: str, body_: bytes = body, ts_: str = str(ts), now: float = ts) -> bool:
        try:
            verify(key, msg_id, ts_, signatures, body_, now=now)
            return True
        except SignatureError:
            return False

    check("test vector: verifies", verifies(expected))
    check("any listed v1 signature may match", verifies(f"v1,bm90IGl0 v2,xyz {expected}"))
    check("tampered body fails", not verifies(expected, body_=b'{"email":"evil@example.com"}'))
    check("tampered timestamp fails", not verifies(expected, ts_=str(ts + 1)))
    check("5 minutes of skew pass", verifies(expected, now=ts + 300) and verifies(expected, now=ts - 300))
    check("more than 5 minutes fail", not verifies(expected, now=ts + 301))
    check("a v2 entry alone fails", not verifies(expected.replace("v1,", "v2,")))
    check("raw base64 is not a secret", _raises(lambda: parse_secret(secret[len("whsec_"):])))
    guide_event = (  # the /execute example of docs/plugin-authors.md, section 3.3, as sent on the wire
        b'{"data":{"response":{"answers":{"crop":{"choice":"maize"},"farm":{"accuracy_m":4.5,"latitude":-1.29,'
        b'"longitude":36.82},"income":null,"name":{"text":"Amina Njeri"},"notes":{"text":"Good harvest this year"}},'
        b'"collector_id":"enumerator-42","duration_ms":93000,"form_id":"f-household-2026","form_version":1,'
        b'"id":"r-0193a5b2","locale":"sw-KE","submitted_at":1795341600000,"team_id":"acme"}},'
        b'"datacontenttype":"application/json","id":"0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33","source":"/collect/web",'
        b'"specversion":"1.0","subject":"f-household-2026","teamid":"acme","time":"2026-11-22T10:00:00Z",'
        b'"type":"response.submitted"}'
    )
    check("the guide's /execute example: signature",
          sign(key, "0193a5b2-7c1e-7d3a-9f00-aa11bb22cc33", 1795341601, guide_event)
          == "v1,vhMWcUuA276yLUBPWwxnwIpLU5TCw524wnPaNI/JwN8=")
    check("the guide's /execute example: 6 words",
          response_words(json.loads(guide_event)["data"]) == ("r-0193a5b2", 6))

    # 2. Word counting, on the contract's response.submitted example (one answer of each kind).
    contract_example = {
        "response": {
            "id": "r-0193a5b2", "form_id": "f-household-2026", "form_version": 1, "team_id": "acme",
            "collector_id": "enumerator-42", "submitted_at": 1795341600000, "locale": "sw-KE",
            "answers": {
                "name": {"text": "Amina Njeri"}, "income": {"number": 12500.5}, "crop": {"choice": "maize"},
                "assets": {"choices": ["radio", "bike"]}, "born": {"date": 7737},
                "phone": {"phone": "+254712345678"},
                "farm": {"latitude": -1.29, "longitude": 36.82, "accuracy_m": 4.5},
                "notes": {"text": "  Good  harvest\tthis\nyear "}, "skipped": None,
            },
            "duration_ms": 93000,
        }
    }
    check("counts only text answers", response_words(contract_example) == ("r-0193a5b2", 6))
    check("empty text is 0 words", count_words("   ") == 0)
    check("malformed data is a BadEvent", _raises(lambda: response_words({"response": {"id": "r"}}), BadEvent))

    # 3. A live round trip against the server on a free port, signed like the bridge signs.
    server = make_server("127.0.0.1", 0, key, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def call(path: str, payload: Any, msg: str, team: str = "acme", signed: bool = True) -> tuple[int, Any]:
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        now = int(time.time())
        headers = {"content-type": "application/json", "switchyard-team": team}
        if signed:
            headers |= {"webhook-id": msg, "webhook-timestamp": str(now), "webhook-signature": sign(key, msg, now, raw)}
        request = urllib.request.Request(base + path, data=raw, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    event = {
        "specversion": "1.0", "id": "evt-1", "source": "/collect/web", "type": "response.submitted",
        "teamid": "acme", "subject": "f-household-2026", "time": "2026-11-22T10:00:00Z",
        "datacontenttype": "application/json", "data": contract_example,
    }
    with urllib.request.urlopen(base + "/metadata", timeout=5) as response:
        check("GET /metadata is the manifest", json.loads(response.read()) == MANIFEST)
    check("/initialize applies", call("/initialize", {"team_id": "acme", "config": {"min_words": 10}}, "init_1")[0] == 200)
    check("/initialize refuses a bad config", call("/initialize", {"team_id": "acme", "config": {"min_words": -1}}, "init_2")[0] == 422)
    status, answer = call("/execute", event, "evt-1")
    result = answer.get("results", [{}])[0]
    check("/execute answers a result", status == 200 and result.get("type") == "wordcount.counted"
          and result.get("data") == {"response_id": "r-0193a5b2", "words": 6, "below_minimum": True})
    check("a repeated webhook-id gets the same answer", call("/execute", event, "evt-1") == (status, answer))
    check("an unsigned call is refused with 401", call("/execute", event, "evt-2", signed=False)[0] == 401)
    status, answer = call("/execute", {**event, "id": "evt-3", "data": {"response": 7}}, "evt-3")
    check("a malformed event is dead-lettered", status == 200 and answer.get("outcome") == "dead_letter")
    status, stats = call("/actions/stats", {}, "msg_1")
    check("stats count the event once", status == 200 and (stats["responses"], stats["words"]) == (1, 6))
    check("config null removes the config", call("/initialize", {"team_id": "acme", "config": None}, "init_3")[0] == 200
          and call("/actions/stats", {}, "msg_2")[1]["configured"] is False)
    server.shutdown()
    server.server_close()

    print("self-test passed" if not failures else f"self-test FAILED: {failures} check(s)")
    return 0 if not failures else 1


def _raises(thunk: Any, kind: type[BaseException] = ValueError) -> bool:
    try:
        thunk()
    except kind:
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description="wordcount: a minimal Switchyard plugin service.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8095, help="listen port (default 8095)")
    parser.add_argument("--secret", help="the plugin's whsec_ signing secret (prefer WORDCOUNT_SIGNING_SECRET)")
    parser.add_argument("--print-manifest", action="store_true", help="print the manifest and exit")
    parser.add_argument("--self-test", action="store_true", help="run the self-test and exit")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if args.print_manifest:
        print(json.dumps(MANIFEST, indent=2))
        return 0
    text = args.secret or os.environ.get("WORDCOUNT_SIGNING_SECRET", "")
    try:
        key = parse_secret(text) if text else None
    except ValueError as error:
        print(f"wordcount: {error}", file=sys.stderr)
        return 2
    return serve(args.host, args.port, key)


if __name__ == "__main__":
    sys.exit(main())
