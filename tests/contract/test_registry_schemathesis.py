"""Schemathesis against the registry binary: every operation of /v1/openapi.json, fuzzed, its answers checked.

It starts switchyard-registry on a free port of 127.0.0.1 against the broker, with topics of its own, seeds a
plugin that has a config_schema and an action, enables and configures it for a team (so that the enablement,
config and action paths have something to find), starts a backfill of a second plugin of that team (so that the
backfill paths find one, while the first plugin's installation stays free for the fuzzer's backfills), then runs `st run` over the served OpenAPI document four
times: every operation with an admin token and random path parameters; then, with the path parameters fixed
to the seeded team, plugin and action, every operation but deregisterPlugin with the admin token, the team
operations with the team's token, and the plugin operations with the plugin's token. Each run checks that

- no answer is a server error, except the documented 503 of the store and the 502/503/504 of the gateway;
- every status code, content type, header and body is the one the document gives for that operation;
- schema-violating requests are refused, and a request without its token gets 401;

bounded to --max-examples per operation: the four runs take about 2.5 minutes on two cores (the
dead-letter and lag routes read Kafka on every call).

Run by scripts/test (which starts the broker and builds the binary):
    python3 -m unittest tests/contract/test_registry_schemathesis.py
Environment: SWITCHYARD_TEST_BOOTSTRAP (default 127.0.0.1:9092), SWITCHYARD_REGISTRY_BIN,
SWITCHYARD_SCHEMATHESIS_MAX_EXAMPLES (default 50), SWITCHYARD_SCHEMATHESIS_SEED (default: random; printed).
"""

import base64
import json
import os
import pathlib
import random
import socket
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid

import jwt
from confluent_kafka.admin import AdminClient

REPO = pathlib.Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("SWITCHYARD_TEST_BOOTSTRAP", "127.0.0.1:9092")
REGISTRY = os.environ.get("SWITCHYARD_REGISTRY_BIN", str(REPO / "target" / "debug" / "switchyard-registry"))
MAX_EXAMPLES = int(os.environ.get("SWITCHYARD_SCHEMATHESIS_MAX_EXAMPLES", "50"))
SEED = int(os.environ.get("SWITCHYARD_SCHEMATHESIS_SEED", str(random.randrange(2**31))))
ST = str(pathlib.Path(sys.executable).parent / "st")

TEAM = "kilimo-coop"
# Not the id of the OpenAPI document's manifest example, which the fuzzer registers with other fields.
PLUGIN = "ledger-sync"
ACTION = "resync"
SECRET = "schemathesis-" + uuid.uuid4().hex + uuid.uuid4().hex
MANIFEST = {
    "id": PLUGIN,
    "name": "Ledger sync",
    "version": "1.2.0",
    # No url_patterns are configured, so the gateway calls nothing: actions end in documented 4xx/502s.
    "url": "https://ledger.plugins.example",
    "events": ["response.submitted", "response.updated"],
    "actions": [ACTION],
    "config_schema": {
        "type": "object",
        "properties": {"sheet_id": {"type": "string"}, "api_token": {"type": "string", "writeOnly": True}},
        "required": ["sheet_id"],
    },
}

# Every check that a run without OpenAPI links can make, but positive_data_acceptance: the registry validates
# some schema-valid bodies against state (a config against the plugin's config_schema, event_types against
# its manifest), which the document describes but a schema cannot express.
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
])

SERVER_ERRORS_ALLOWED = """
[checks.not_a_server_error]
# 503: the store did not take a write in time (documented on every /v1 operation).
expected-statuses = ["1xx", "2xx", "3xx", "4xx", "503"]

[[operations]]
include-operation-id = "callAction"
# The gateway's documented failures: the plugin's service failed (502), timed out (504).
checks.not_a_server_error.expected-statuses = ["1xx", "2xx", "3xx", "4xx", "502", "503", "504"]
"""

# A second plugin of the team, whose installation holds the seeded backfill.
HELD_PLUGIN = "ledger-archive"

# Path parameters fixed to the seeded team, plugin, action and backfill, so that the stateful paths are reached.
SEEDED_PARAMETERS = f"""
[parameters]
"path.team" = "{TEAM}"
"path.id" = "{PLUGIN}"
"path.action" = "{ACTION}"
"path.backfill" = "{{backfill}}"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(**claims):
    return jwt.encode(dict(claims, exp=int(time.time()) + 3600), SECRET, algorithm="HS256")


def call(port, method, path, bearer, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class RegistrySchemathesisTest(unittest.TestCase):
    def setUp(self):
        self.prefix = f"schemathesis-{uuid.uuid4().hex[:8]}"
        self.log_dir = REPO / "target" / "test-logs" / self.prefix
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = dict(os.environ, **{
            "SWITCHYARD_REGISTRY__KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "SWITCHYARD_REGISTRY__HTTP__LISTEN": f"127.0.0.1:{self.port}",
            "SWITCHYARD_REGISTRY__AUTH__HS256_SECRET": SECRET,
            "SWITCHYARD_REGISTRY__GATEWAY__SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
            # Sealed config secrets, as a production registry runs (the reseal route then works).
            "SWITCHYARD_REGISTRY__SECRETS__MASTER_KEYS": "fuzz:" + base64.b64encode(os.urandom(32)).decode(),
            "SWITCHYARD_REGISTRY__TOPICS__PLUGINS": f"{self.prefix}.plugins",
            "SWITCHYARD_REGISTRY__TOPICS__ENABLEMENTS": f"{self.prefix}.enablements",
            "SWITCHYARD_REGISTRY__TOPICS__CONFIGS": f"{self.prefix}.configs",
            "SWITCHYARD_REGISTRY__TOPICS__INSTANCES": f"{self.prefix}.instances",
            "SWITCHYARD_REGISTRY__TOPICS__BACKFILLS": f"{self.prefix}.backfills",
            "SWITCHYARD_REGISTRY__TOPICS__BACKFILL_PROGRESS": f"{self.prefix}.backfill-progress",
            "SWITCHYARD_REGISTRY__TOPICS__CONSOLE_SIGN_INS": f"{self.prefix}.console-sign-ins",
            "SWITCHYARD_REGISTRY__TOPICS__PLUGIN_REGISTRATIONS": f"{self.prefix}.plugin-registrations",
            "SWITCHYARD_REGISTRY__TOPICS__DEAD_LETTER_REPLAYS": f"{self.prefix}.dead-letter-replays",
            # Missing, so every backfill's since is within retention (the retention check has tests of its own).
            "SWITCHYARD_REGISTRY__TOPICS__CORE_EVENTS": f"{self.prefix}.core.events",
            "SWITCHYARD_REGISTRY__TOPICS__PLUGIN_EVENTS_TEMPLATE": f"{self.prefix}.plugin.{{plugin}}.events",
            "SWITCHYARD_REGISTRY__TOPICS__PLUGIN_DEAD_LETTER_TEMPLATE": f"{self.prefix}.plugin.{{plugin}}.dlq",
            # Fuzzed registrations each create two topics: keep them small.
            "SWITCHYARD_REGISTRY__PROVISIONING__PARTITIONS": "1",
            "SWITCHYARD_REGISTRY__LOG__LEVEL": "info",
        })
        self.log = open(self.log_dir / "registry.log", "wb")
        self.registry = subprocess.Popen([REGISTRY], env=env, stdout=self.log, stderr=self.log)

    def tearDown(self):
        self.registry.terminate()
        try:
            self.registry.wait(60)
        except subprocess.TimeoutExpired:
            self.registry.kill()
            self.registry.wait()
        self.log.close()
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(self.prefix + ".")]
        if topics:
            for future in admin.delete_topics(topics, operation_timeout=30).values():
                try:
                    future.result(60)
                except Exception:  # noqa: BLE001 - best effort: the topics are unique to this run
                    pass

    def test_every_operation_answers_as_documented(self):
        self.wait_ready()
        admin_token = token(role="admin")
        status, body = call(self.port, "POST", "/v1/plugins", admin_token, MANIFEST)
        self.assertEqual(status, 201, body)
        status, body = call(self.port, "PUT", f"/v1/teams/{TEAM}/plugins/{PLUGIN}", admin_token, {"enabled": True})
        self.assertEqual(status, 200, body)
        status, body = call(self.port, "PUT", f"/v1/teams/{TEAM}/plugins/{PLUGIN}/config", admin_token,
                            {"sheet_id": "sheet-1", "api_token": "s3cret"})
        self.assertEqual(status, 200, body)
        status, body = call(self.port, "POST", "/v1/plugins", admin_token, dict(MANIFEST, id=HELD_PLUGIN))
        self.assertEqual(status, 201, body)
        status, body = call(self.port, "PUT", f"/v1/teams/{TEAM}/plugins/{HELD_PLUGIN}", admin_token, {"enabled": True})
        self.assertEqual(status, 200, body)
        an_hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        status, body = call(self.port, "POST", f"/v1/teams/{TEAM}/plugins/{HELD_PLUGIN}/backfills", admin_token,
                            {"since": an_hour_ago})
        self.assertEqual(status, 202, body)
        seeded_parameters = SEEDED_PARAMETERS.replace("{backfill}", body["id"])

        print(f"\nschemathesis seed {SEED}, logs in {self.log_dir}", file=sys.stderr)
        failures = []
        # name, token, path parameters fixed to the seeded ones, which operations.
        runs = [
            # Every operation, random path parameters: mostly 404s and 422s.
            ("admin-random", admin_token, False, []),
            # Every operation on the seeded plugin and team, except the one that would remove it.
            ("admin-seeded", admin_token, True, ["--exclude-operation-id", "deregisterPlugin"]),
            ("team-seeded", token(role="team", team=TEAM), True, ["--include-path-regex", "^/v1/teams/"]),
            ("plugin-seeded", token(role="plugin", plugin=PLUGIN), True,
             ["--include-path-regex", "^/v1/plugins", "--exclude-operation-id", "deregisterPlugin"]),
        ]
        for name, bearer, seeded, extra in runs:
            config = self.log_dir / f"schemathesis-{name}.toml"
            config.write_text(SERVER_ERRORS_ALLOWED + (seeded_parameters if seeded else ""))
            started = time.time()
            result = subprocess.run(
                [ST, "--config-file", str(config), "run", f"http://127.0.0.1:{self.port}/v1/openapi.json",
                 "--url", f"http://127.0.0.1:{self.port}",
                 "--header", f"Authorization: Bearer {bearer}",
                 "--checks", CHECKS,
                 "--phases", "examples,coverage,fuzzing",
                 "--max-examples", str(MAX_EXAMPLES),
                 "--seed", str(SEED),
                 "--request-timeout", "20",
                 # One worker: with two, schemathesis 4.32.5 on CPython 3.11 hit "AST constructor recursion
                 # depth mismatch" in its own code (threads compiling at once).
                 "--workers", "1",
                 "--generation-database", "none",
                 "--report", "junit", "--report-dir", str(self.log_dir / name),
                 "--no-color", *extra],
                cwd=self.log_dir, capture_output=True, text=True, timeout=240,
            )
            (self.log_dir / f"schemathesis-{name}.txt").write_text(result.stdout + result.stderr)
            print(f"schemathesis ({name} token): exit {result.returncode} in {time.time() - started:.0f} s",
                  file=sys.stderr)
            if result.returncode != 0:
                failures.append(f"--- schemathesis with the {name} token ---\n{result.stdout[-20000:]}{result.stderr}")
        self.assertFalse(failures, "\n".join(failures))
        self.assertIsNone(self.registry.poll(), "the registry is still running")

    def wait_ready(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.registry.poll() is not None:
                self.fail(f"the registry exited with {self.registry.returncode}; see {self.log_dir}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.fail("the registry did not become ready")


if __name__ == "__main__":
    unittest.main()
