package switchyard.peer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class PeerTopologyTest {
    private static final List<String> PLUGINS = List.of("sms-notify", "sheets-export", "audit-log", "billing-sync");

    /** The 47-byte response.submitted of contract section 6.4. */
    private static final byte[] AVRO_RESPONSE = HexFormat.of().parseHex(
            "c301" + "697ad49bdeac93b3" + "06722d31" + "06662d31" + "02" + "0861636d65" + "06776562"
                    + "809496abc068" + "04656e" + "02" + "047131" + "02" + "046869" + "00" + "00");

    private TopologyTestDriver driver;
    private TestInputTopic<String, String> plugins;
    private TestInputTopic<String, String> enablements;
    private TestInputTopic<byte[], byte[]> events;
    private PeerTopology.Counters counters;

    @BeforeEach
    void start() {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "peer-test");
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        counters = new PeerTopology.Counters();
        driver = new TopologyTestDriver(PeerTopology.build(PeerTopology.Settings.defaults(), counters), props);
        StringSerializer s = new StringSerializer();
        plugins = driver.createInputTopic("switchyard.plugins", s, s);
        enablements = driver.createInputTopic("switchyard.enablements", s, s);
        ByteArraySerializer b = new ByteArraySerializer();
        events = driver.createInputTopic("core.events", b, b);
    }

    @AfterEach
    void stop() {
        driver.close();
    }

    // --- helpers -------------------------------------------------------------------------------------------------

    private void register(String id, String... events) {
        StringBuilder list = new StringBuilder();
        for (String e : events) {
            list.append(list.length() == 0 ? "" : ",").append('"').append(e).append('"');
        }
        plugins.pipeInput(id, "{\"id\":\"" + id + "\",\"name\":\"" + id + "\",\"version\":\"1.0.0\",\"events\":[" + list + "]}");
    }

    private void enable(String team, String plugin, boolean enabled, String eventTypes) {
        enablements.pipeInput(team + "/" + plugin, "{\"team_id\":\"" + team + "\",\"plugin_id\":\"" + plugin
                + "\",\"enabled\":" + enabled + (eventTypes == null ? "" : ",\"event_types\":" + eventTypes)
                + ",\"updated_at\":\"2026-11-22T09:55:00Z\"}");
    }

    private static Headers headers(String type, String contentType) {
        RecordHeaders h = new RecordHeaders();
        h.add("ce_specversion", bytes("1.0"));
        h.add("ce_id", bytes("evt-" + System.nanoTime()));
        h.add("ce_source", bytes("/collect/web"));
        h.add("ce_type", bytes(type));
        h.add("content-type", bytes(contentType));
        h.add("traceparent", bytes("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        return h;
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static final String SUBMITTED_JSON = "{\"response\":{\"id\":\"r-1\",\"form_id\":\"f-1\",\"form_version\":1,"
            + "\"team_id\":\"acme\",\"collector_id\":\"web\",\"submitted_at\":1795341600000,\"locale\":\"en\","
            + "\"answers\":{\"q1\":{\"text\":\"hi\"},\"q2\":{\"number\":3},\"q3\":null,\"q4\":{\"latitude\":-1.29,"
            + "\"longitude\":36.82}}}}";
    private static final String UPDATED_JSON = SUBMITTED_JSON.substring(0, SUBMITTED_JSON.length() - 1)
            + ",\"revision\":2,\"updated_by\":\"u\",\"updated_at\":1795365900000}";
    private static final String FORM = "{\"id\":\"f-1\",\"team_id\":\"acme\",\"title\":\"Minimal\",\"version\":1,"
            + "\"questions\":[{\"id\":\"q1\",\"label\":\"Name?\",\"kind\":\"TEXT\"}],\"created_at\":1795165200000,"
            + "\"updated_at\":1795165200000}";

    /** A valid event of {@code type}: the v1 types carry a valid payload, other types an arbitrary one. */
    private void send(String team, String type) {
        byte[] value;
        String contentType = "application/json";
        switch (type) {
            case "response.submitted":
                value = AVRO_RESPONSE;
                contentType = "application/avro";
                break;
            case "response.updated":
                value = bytes(UPDATED_JSON);
                contentType = "application/json; charset=utf-8";
                break;
            case "form.created":
                value = bytes("{\"form\":" + FORM + ",\"created_by\":\"user-17\"}");
                break;
            case "form.updated":
                value = bytes("{\"form\":" + FORM + ",\"previous_version\":1,\"updated_by\":\"user-17\"}");
                break;
            default:
                value = bytes("not even JSON: the router does not look at values of other types");
        }
        events.pipeInput(new TestRecord<>(bytes(team), value, headers(type, contentType)));
    }

    /** Which plugin topics got how many records (and drains them). */
    private Map<String, Integer> delivered() {
        Map<String, Integer> out = new TreeMap<>();
        for (String p : PLUGINS) {
            int n = topic("plugin." + p + ".events").readRecordsToList().size();
            if (n > 0) {
                out.put(p, n);
            }
        }
        return out;
    }

    private TestOutputTopic<byte[], byte[]> topic(String name) {
        ByteArrayDeserializer d = new ByteArrayDeserializer();
        return driver.createOutputTopic(name, d, d);
    }

    private static String header(Headers h, String name) {
        Header last = h.lastHeader(name);
        return last == null ? null : new String(last.value(), StandardCharsets.UTF_8);
    }

    // --- routing -------------------------------------------------------------------------------------------------

    @Test
    void routedUnchangedToEachEnabledAndSubscribedPlugin() {
        register("sms-notify", "response.submitted");
        register("sheets-export", "response.submitted", "response.updated");
        register("audit-log", "form.created", "response.submitted");
        enable("acme", "sms-notify", true, null);
        enable("acme", "sheets-export", true, "[]");
        enable("acme", "audit-log", true, "[\"response.submitted\"]");

        Headers in = headers("response.submitted", "application/avro");
        events.pipeInput(new TestRecord<>(bytes("acme"), AVRO_RESPONSE, in));

        for (String p : List.of("sms-notify", "sheets-export", "audit-log")) {
            List<TestRecord<byte[], byte[]>> got = topic("plugin." + p + ".events").readRecordsToList();
            assertEquals(1, got.size(), p);
            TestRecord<byte[], byte[]> copy = got.get(0);
            assertArrayEquals(bytes("acme"), copy.key());
            assertArrayEquals(AVRO_RESPONSE, copy.value());
            // Every input header in order, then switchyard_source.
            Header[] out = copy.headers().toArray();
            Header[] expected = in.toArray();
            assertEquals(expected.length + 1, out.length);
            for (int i = 0; i < expected.length; i++) {
                assertEquals(expected[i].key(), out[i].key());
                assertArrayEquals(expected[i].value(), out[i].value());
            }
            assertEquals("switchyard_source", out[expected.length].key());
            assertEquals("core.events/0/0", header(copy.headers(), "switchyard_source"));
        }
        assertTrue(topic("core.events.dlq").isEmpty());
    }

    @Test
    void notRoutedWhenDisabledNotSubscribedFilteredOrUnregistered() {
        register("sms-notify", "response.submitted");
        register("sheets-export", "response.updated");
        register("audit-log", "response.submitted");
        enable("acme", "sms-notify", false, null); // disabled
        enable("acme", "sheets-export", true, null); // enabled, but the manifest does not list the type
        enable("acme", "audit-log", true, "[\"form.created\"]"); // filtered to another type
        enable("acme", "billing-sync", true, null); // not registered
        send("acme", "response.submitted");
        send("initech", "response.submitted"); // no enablements at all
        assertEquals(Map.of(), delivered());
        assertTrue(topic("core.events.dlq").isEmpty());
    }

    @Test
    void disableAfterEnableTakesEffect() {
        register("sms-notify", "response.submitted");
        enable("acme", "sms-notify", true, null);
        send("acme", "response.submitted");
        assertEquals(Map.of("sms-notify", 1), delivered());

        enable("acme", "sms-notify", false, null);
        send("acme", "response.submitted");
        assertEquals(Map.of(), delivered());

        enable("acme", "sms-notify", true, null);
        send("acme", "response.submitted");
        assertEquals(Map.of("sms-notify", 1), delivered());

        enablements.pipeInput("acme/sms-notify", (String) null); // tombstone
        send("acme", "response.submitted");
        assertEquals(Map.of(), delivered());

        enable("acme", "sms-notify", true, null);
        plugins.pipeInput("sms-notify", (String) null); // deregistered: the enablement stays but routes nothing
        send("acme", "response.submitted");
        assertEquals(Map.of(), delivered());
        register("sms-notify", "response.submitted"); // registered again: the kept enablement applies
        send("acme", "response.submitted");
        assertEquals(Map.of("sms-notify", 1), delivered());
    }

    @Test
    void invalidControlRecordsActAsTombstones() {
        register("sms-notify", "response.submitted");
        enable("acme", "sms-notify", true, null);
        send("acme", "response.submitted");
        assertEquals(Map.of("sms-notify", 1), delivered());

        // A manifest whose version is not semver deregisters the plugin.
        plugins.pipeInput("sms-notify", "{\"id\":\"sms-notify\",\"name\":\"SMS\",\"version\":\"1.2\",\"events\":[\"response.submitted\"]}");
        send("acme", "response.submitted");
        assertEquals(Map.of(), delivered());
        register("sms-notify", "response.submitted");

        // An enablement whose key disagrees with its fields disables the pair.
        enablements.pipeInput("acme/sms-notify", "{\"team_id\":\"globex\",\"plugin_id\":\"sms-notify\",\"enabled\":true,"
                + "\"updated_at\":\"2026-11-22T09:55:00Z\"}");
        send("acme", "response.submitted");
        assertEquals(Map.of(), delivered());
        // Not JSON at all.
        enable("acme", "sms-notify", true, null);
        enablements.pipeInput("acme/sms-notify", "not json");
        send("acme", "response.submitted");
        assertEquals(Map.of(), delivered());
    }

    /** Contract section 8, the worked example, row by row. */
    @Test
    void theContractsWorkedExample() {
        register("sms-notify", "response.submitted");
        register("sheets-export", "response.submitted", "response.updated");
        register("audit-log", "form.created", "form.updated", "response.submitted", "response.updated");
        register("billing-sync", "payment.received");
        enable("acme", "sms-notify", true, null);
        enable("acme", "sheets-export", true, "[\"response.updated\"]");
        enable("acme", "audit-log", false, null);
        enable("acme", "billing-sync", true, null);
        enable("globex", "audit-log", true, "[]");
        enable("globex", "crm-push", true, null);

        send("acme", "payment.received");
        assertEquals(Map.of("billing-sync", 1), delivered());
        send("acme", "form.created");
        assertEquals(Map.of(), delivered());
        send("initech", "response.submitted");
        assertEquals(Map.of(), delivered());

        send("acme", "response.submitted");
        assertEquals(Map.of("sms-notify", 1), delivered());
        send("acme", "response.updated");
        assertEquals(Map.of("sheets-export", 1), delivered());
        send("globex", "form.updated");
        assertEquals(Map.of("audit-log", 1), delivered());
        send("globex", "response.submitted");
        assertEquals(Map.of("audit-log", 1), delivered());
        events.pipeInput(new TestRecord<>(bytes("globex"), bytes(SUBMITTED_JSON), headers("response.submitted", "application/json")));
        assertEquals(Map.of("audit-log", 1), delivered());
        assertTrue(topic("core.events.dlq").isEmpty());
    }

    // --- dead letters --------------------------------------------------------------------------------------------

    private String deadLetterReason(byte[] key, byte[] value, Headers headers) {
        events.pipeInput(new TestRecord<>(key, value, headers));
        List<TestRecord<byte[], byte[]>> dlq = topic("core.events.dlq").readRecordsToList();
        assertEquals(1, dlq.size());
        TestRecord<byte[], byte[]> r = dlq.get(0);
        assertArrayEquals(key, r.key());
        assertArrayEquals(value, r.value());
        assertTrue(header(r.headers(), "switchyard_source").startsWith("core.events/0/"));
        assertTrue(header(r.headers(), "switchyard_error_detail").length() > 0);
        return header(r.headers(), "switchyard_error");
    }

    @Test
    void invalidEventsAreDeadLetteredWithTheReason() {
        register("sms-notify", "response.submitted");
        enable("acme", "sms-notify", true, null);
        String t = "response.submitted";
        assertEquals("missing_key", deadLetterReason(null, AVRO_RESPONSE, headers(t, "application/avro")));
        assertEquals("invalid_key", deadLetterReason(bytes("acme/x"), AVRO_RESPONSE, headers(t, "application/avro")));
        Headers noType = headers(t, "application/avro");
        noType.remove("ce_type");
        assertEquals("missing_header", deadLetterReason(bytes("acme"), AVRO_RESPONSE, noType));
        Headers twice = headers(t, "application/avro");
        twice.add("ce_id", bytes("again"));
        assertEquals("invalid_header", deadLetterReason(bytes("acme"), AVRO_RESPONSE, twice));
        Headers badTime = headers(t, "application/avro");
        badTime.add("ce_time", bytes("yesterday"));
        assertEquals("invalid_header", deadLetterReason(bytes("acme"), AVRO_RESPONSE, badTime));
        Headers otherTeam = headers(t, "application/avro");
        otherTeam.add("ce_teamid", bytes("globex"));
        assertEquals("teamid_mismatch", deadLetterReason(bytes("acme"), AVRO_RESPONSE, otherTeam));
        assertEquals("unsupported_content_type",
                deadLetterReason(bytes("acme"), AVRO_RESPONSE, headers(t, "avro/binary")));
        byte[] otherFingerprint = AVRO_RESPONSE.clone();
        otherFingerprint[2] ^= 1;
        assertEquals("unknown_schema", deadLetterReason(bytes("acme"), otherFingerprint, headers(t, "application/avro")));
        byte[] truncated = java.util.Arrays.copyOf(AVRO_RESPONSE, 30);
        assertEquals("invalid_payload", deadLetterReason(bytes("acme"), truncated, headers(t, "application/avro")));
        byte[] trailing = java.util.Arrays.copyOf(AVRO_RESPONSE, AVRO_RESPONSE.length + 1);
        assertEquals("invalid_payload", deadLetterReason(bytes("acme"), trailing, headers(t, "application/avro")));
        String stringTimestamp = "{\"response\":{\"id\":\"r-1\",\"form_id\":\"f-1\",\"form_version\":1,\"team_id\":\"acme\","
                + "\"collector_id\":\"web\",\"submitted_at\":\"2026-11-22T10:00:00Z\",\"locale\":\"en\",\"answers\":{}}}";
        assertEquals("invalid_payload",
                deadLetterReason(bytes("acme"), bytes(stringTimestamp), headers(t, "application/json")));
        assertEquals("invalid_payload", deadLetterReason(bytes("acme"), null, headers(t, "application/json")));
        assertEquals(Map.of(), delivered());

        // A type the contract does not define is routed without looking at the value, even a null one.
        register("billing-sync", "payment.received");
        enable("acme", "billing-sync", true, null);
        events.pipeInput(new TestRecord<>(bytes("acme"), null, headers("payment.received", "application/json")));
        assertEquals(Map.of("billing-sync", 1), delivered());
    }

    @Test
    void fingerprintsAreTheContracts() {
        Payloads p = Payloads.load();
        Map<String, Long> expected = Map.of(
                "form.created", 0x0e966efdf6002bbbL,
                "form.updated", 0x613d89d1a14b3be6L,
                "response.submitted", 0xb393acde9bd47a69L,
                "response.updated", 0x2b0f789cb1f1be5fL);
        List<String> seen = new ArrayList<>();
        for (var e : expected.entrySet()) {
            assertArrayEquals(new long[] {e.getValue()}, p.fingerprints(e.getKey()), e.getKey());
            seen.add(e.getKey());
        }
        assertEquals(4, seen.size());
        assertTrue(p.check("response.submitted", true, AVRO_RESPONSE) == null);
    }
}
