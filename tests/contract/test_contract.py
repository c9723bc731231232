"""A client that knows only docs/contract.md: confluent-kafka and fastavro, no Switchyard code.

It registers a plugin and enablements by producing to the control topics, produces core events in both
content types (and two broken ones), and reads exactly the documented results from the plugin topic and
the dead-letter topic with a read_committed consumer. A second case enables a plugin with a backfill
request and reads history, then live events, and the progress record. The router under test is the real
binary.

Run by scripts/test (which starts the broker and builds the binary):
    python3 -m unittest tests/contract/test_contract.py
Environment: SWITCHYARD_TEST_BOOTSTRAP (default 127.0.0.1:9092), SWITCHYARD_ROUTER_BIN.
"""

import io
import json
import os
import pathlib
import socket
import subprocess
import time
import unittest
import urllib.request
import uuid

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro.schema import fingerprint, to_parsing_canonical_form

REPO = pathlib.Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("SWITCHYARD_TEST_BOOTSTRAP", "127.0.0.1:9092")
ROUTER = os.environ.get("SWITCHYARD_ROUTER_BIN", str(REPO / "target" / "debug" / "switchyard-router"))


def avro_value(event_type, data):
    """contract.md section 6: 0xC3 0x01, CRC-64-AVRO fingerprint of the schema, Avro binary body."""
    schema = fastavro.parse_schema(json.loads((REPO / "schemas" / "avro" / f"{event_type}.avsc").read_text()))
    out = io.BytesIO()
    out.write(b"\xc3\x01")
    out.write(bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")))
    fastavro.schemaless_writer(out, schema, data)
    return out.getvalue()


def response(team, response_id):
    """A response.submitted data object in the contract's JSON form (section 5)."""
    return {
        "response": {
            "id": response_id,
            "form_id": "form-household-2026",
            "form_version": 3,
            "team_id": team,
            "collector_id": "enumerator-7",
            "submitted_at": 1795341600000,
            "locale": "sw-KE",
            "answers": {
                "name": {"text": "Achieng"},
                "monthly_income": {"number": 18000.0},
                "city": {"choice": "kisumu"},
                "phone": {"phone": "+254712345678"},
                "farm": {"latitude": -0.09, "longitude": 34.77, "accuracy_m": None},
                "skipped": None,
            },
            "duration_ms": None,
        }
    }


def headers(team, event_id, event_type, content_type):
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", b"/collect/android"),
        ("ce_type", event_type.encode()),
        ("ce_time", b"2026-11-22T10:00:00Z"),
        ("ce_subject", b"form-household-2026"),
        ("ce_teamid", team.encode()),
        ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("content-type", content_type.encode()),
    ]


def read_committed(topic):
    """Every committed record of a topic, from the beginning to the end of each partition."""
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": f"contract-reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    open_partitions, records = set(partitions), []
    deadline = time.time() + 60
    while open_partitions and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                open_partitions.discard(message.partition())
                continue
            raise RuntimeError(message.error())
        records.append(message)
    consumer.close()
    return records


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ContractTest(unittest.TestCase):
    def test_a_plain_client_gets_exactly_the_documented_results(self):
        prefix = f"contract-{uuid.uuid4().hex[:8]}"
        topics = {
            "core": f"{prefix}.core.events", "plugins": f"{prefix}.plugins",
            "enablements": f"{prefix}.enablements", "dlq": f"{prefix}.core.events.dlq",
            "sheets": f"{prefix}.plugin.sheets-export.events",
        }
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        compacted = {"cleanup.policy": "compact"}
        futures = admin.create_topics([
            NewTopic(topics["core"], 3, 1), NewTopic(topics["dlq"], 1, 1), NewTopic(topics["sheets"], 3, 1),
            NewTopic(topics["plugins"], 1, 1, config=compacted), NewTopic(topics["enablements"], 1, 1, config=compacted),
        ])
        for future in futures.values():
            future.result(30)

        producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
        # contract.md section 7: a manifest keyed by plugin id, an enablement keyed <team>/<plugin>.
        manifest = {"id": "sheets-export", "name": "Google Sheets export", "version": "1.4.0",
                    "url": "http://127.0.0.1:8091", "events": ["response.submitted"], "actions": ["resync"]}
        producer.produce(topics["plugins"], key=b"sheets-export", value=json.dumps(manifest).encode())
        for team, enabled in [("kilimo-coop", True), ("afya-research", False)]:
            enablement = {"team_id": team, "plugin_id": "sheets-export", "enabled": enabled,
                          "updated_at": "2026-11-22T09:00:00Z"}
            producer.produce(topics["enablements"], key=f"{team}/sheets-export".encode(), value=json.dumps(enablement).encode())
        producer.flush(30)

        port, router = self.start_router(prefix, topics)
        try:
            self.wait_ready(port)
            sent = {
                "json": (b"kilimo-coop", json.dumps(response("kilimo-coop", "r-1")).encode(),
                         headers("kilimo-coop", "evt-json", "response.submitted", "application/json")),
                "avro": (b"kilimo-coop", avro_value("response.submitted", response("kilimo-coop", "r-2")),
                         headers("kilimo-coop", "evt-avro", "response.submitted", "application/avro")),
                "disabled": (b"afya-research", json.dumps(response("afya-research", "r-3")).encode(),
                             headers("afya-research", "evt-disabled", "response.submitted", "application/json")),
                "mismatch": (b"kilimo-coop", json.dumps(response("kilimo-coop", "r-4")).encode(),
                             headers("afya-research", "evt-mismatch", "response.submitted", "application/json")),
                "bad": (b"kilimo-coop", b'{"response": {"id": 5}}',
                        headers("kilimo-coop", "evt-bad", "response.submitted", "application/json")),
            }
            for key, value, event_headers in sent.values():
                producer.produce(topics["core"], key=key, value=value, headers=event_headers)
            producer.flush(30)
            self.wait_outcomes(port, len(sent))

            routed = {dict(m.headers())["ce_id"]: m for m in read_committed(topics["sheets"])}
            self.assertEqual(sorted(routed), [b"evt-avro", b"evt-json"])
            for name in ["json", "avro"]:
                key, value, event_headers = sent[name]
                message = routed[dict(event_headers)["ce_id"]]
                self.assertEqual(message.key(), key)
                self.assertEqual(message.value(), value, "value bytes unchanged")
                self.assertEqual(message.headers()[:-1], event_headers, "headers unchanged, in order")
                name_, source = message.headers()[-1]
                self.assertEqual(name_, "switchyard_source")
                self.assertRegex(source.decode(), rf"^{topics['core']}/\d+/\d+$")

            dead = {dict(m.headers())["ce_id"]: dict(m.headers()) for m in read_committed(topics["dlq"])}
            self.assertEqual(sorted(dead), [b"evt-bad", b"evt-mismatch"])
            self.assertEqual(dead[b"evt-mismatch"]["switchyard_error"], b"teamid_mismatch")
            self.assertEqual(dead[b"evt-bad"]["switchyard_error"], b"invalid_payload")
            for letter in dead.values():
                self.assertTrue(letter["switchyard_error_detail"])
                self.assertIn("switchyard_source", letter)
                self.assertNotIn("switchyard_plugin", letter)
        finally:
            router.terminate()
            self.assertEqual(router.wait(60), 0, "SIGTERM exits 0")

    def test_a_backfill_delivers_history_then_live_as_documented(self):
        """contract.md sections 7.2, 7.5, 9.1 and 10.5: an enablement carrying a backfill request."""
        prefix = f"contract-{uuid.uuid4().hex[:8]}"
        topics = {
            "core": f"{prefix}.core.events", "plugins": f"{prefix}.plugins",
            "enablements": f"{prefix}.enablements", "dlq": f"{prefix}.core.events.dlq",
            "archive": f"{prefix}.plugin.archive.events", "progress": f"{prefix}.backfill-progress",
        }
        admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
        compacted = {"cleanup.policy": "compact"}
        futures = admin.create_topics([
            NewTopic(topics["core"], 1, 1), NewTopic(topics["dlq"], 1, 1), NewTopic(topics["archive"], 1, 1),
            NewTopic(topics["plugins"], 1, 1, config=compacted),
            NewTopic(topics["enablements"], 1, 1, config=compacted),
            NewTopic(topics["progress"], 1, 1, config=compacted),
        ])
        for future in futures.values():
            future.result(30)
        producer = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True})
        manifest = {"id": "archive", "name": "Archive", "version": "1.0.0", "events": ["response.submitted"],
                    "actions": []}
        producer.produce(topics["plugins"], key=b"archive", value=json.dumps(manifest).encode())
        team = "kilimo-coop"

        def send(ids):
            for event_id in ids:
                producer.produce(topics["core"], key=team.encode(),
                                 value=json.dumps(response(team, event_id)).encode(),
                                 headers=headers(team, event_id, "response.submitted", "application/json"))
            producer.flush(30)

        history = [f"old-{i}" for i in range(5)]
        send(history)
        port, router = self.start_router(prefix, topics, progress=topics["progress"])
        try:
            self.wait_ready(port)
            self.wait_outcomes(port, len(history))  # unrouted: nothing was enabled yet
            enablement = {"team_id": team, "plugin_id": "archive", "enabled": True,
                          "backfill": {"id": "bf-contract-1", "since": "2020-01-01T00:00:00Z"},
                          "updated_at": "2026-12-05T10:00:00Z"}
            producer.produce(topics["enablements"], key=f"{team}/archive".encode(),
                             value=json.dumps(enablement).encode())
            producer.flush(30)
            progress = self.wait_progress(topics["progress"], "bf-contract-1/0")
            live = ["new-1", "new-2"]
            send(live)
            self.wait_outcomes(port, len(history) + len(live))

            copies = read_committed(topics["archive"])
            self.assertEqual([dict(m.headers())["ce_id"].decode() for m in copies], history + live)
            for message in copies:
                added = [name for name, _ in message.headers()][len(headers(team, "x", "t", "c")):]
                historical = dict(message.headers())["ce_id"].startswith(b"old-")
                self.assertEqual(added, ["switchyard_source", "switchyard_backfill"] if historical
                                 else ["switchyard_source"])
                if historical:
                    self.assertEqual(dict(message.headers())["switchyard_backfill"], b"bf-contract-1")
            self.assertEqual(progress["state"], "done")
            self.assertEqual((progress["from"], progress["until"], progress["hold"]), (0, 5, 5))
            self.assertEqual((progress["matched"], progress["written"], progress["live_from"]), (5, 5, 5))
        finally:
            router.terminate()
            self.assertEqual(router.wait(60), 0, "SIGTERM exits 0")

    def start_router(self, prefix, topics, progress=None):
        """The router binary on the test's topics; returns its admin port and process."""
        port = free_port()
        env = dict(os.environ, **{
            "SWITCHYARD_ROUTER__KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
            "SWITCHYARD_ROUTER__TOPICS__CORE_EVENTS": topics["core"],
            "SWITCHYARD_ROUTER__TOPICS__PLUGINS": topics["plugins"],
            "SWITCHYARD_ROUTER__TOPICS__ENABLEMENTS": topics["enablements"],
            "SWITCHYARD_ROUTER__TOPICS__DEAD_LETTER": topics["dlq"],
            "SWITCHYARD_ROUTER__TOPICS__PLUGIN_EVENTS_TEMPLATE": f"{prefix}.plugin.{{plugin}}.events",
            "SWITCHYARD_ROUTER__TOPICS__BACKFILL_PROGRESS": progress or f"{prefix}.backfill-progress",
            "SWITCHYARD_ROUTER__DELIVERY__GROUP_ID": prefix,
            "SWITCHYARD_ROUTER__DELIVERY__TRANSACTIONAL_ID": prefix,
            "SWITCHYARD_ROUTER__ADMIN__LISTEN": f"127.0.0.1:{port}",
        })
        log_dir = REPO / "target" / "test-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"{prefix}.log", "wb") as log:
            return port, subprocess.Popen([ROUTER], env=env, stdout=log, stderr=log)

    def wait_progress(self, topic, key):
        """The last committed progress record of `key` once it says live routing resumed (section 7.5)."""
        deadline = time.time() + 60
        while time.time() < deadline:
            last = {}
            for message in read_committed(topic):
                last[message.key().decode()] = json.loads(message.value())
            if "live_from" in last.get(key, {}):
                return last[key]
            time.sleep(0.3)
        self.fail(f"no progress record of {key} with live_from")

    def wait_ready(self, port):
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.fail("the router did not become ready")

    def wait_outcomes(self, port, n):
        deadline = time.time() + 60
        while time.time() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
            total = sum(float(line.split()[-1]) for line in text.splitlines()
                        if line.startswith("switchyard_router_events_total{"))
            if total >= n:
                return
            time.sleep(0.2)
        self.fail(f"fewer than {n} outcomes")


if __name__ == "__main__":
    unittest.main()
