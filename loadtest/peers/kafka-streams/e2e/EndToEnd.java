// An end-to-end check of the peer against a real broker. Run it with the peer's jar on the class path (Java's
// single-file launcher), while the peer runs:
//
//   java -cp target/switchyard-streams-peer.jar e2e/EndToEnd.java --bootstrap 127.0.0.1:9092 --events 20000
//
// It creates the topics it needs (if missing), writes the plugins and enablements of the contract's worked example
// (section 8), then events of several teams, types and content types, about 2% of them invalid, and reads every
// plugin topic and the dead-letter topic back with isolation.level=read_committed. It checks that each event went
// to exactly the plugins the routing rule names, once each, with its key, value and headers unchanged plus
// switchyard_source, and that each invalid event was dead-lettered once with the expected reason. Exit 0 if all
// holds. Records of earlier runs are told apart by the ce_id prefix of this run.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class EndToEnd {
    static final byte[] AVRO_RESPONSE = HexFormat.of().parseHex("c301697ad49bdeac93b306722d3106662d31020861636d650677656280"
            + "9496abc06804656e02047131020468690000");
    static final String FORM = "{\"id\":\"f-1\",\"team_id\":\"acme\",\"title\":\"Minimal\",\"version\":1,\"questions\":"
            + "[{\"id\":\"q1\",\"label\":\"Name?\",\"kind\":\"TEXT\"}],\"created_at\":1795165200000,\"updated_at\":1795165200000}";
    static final String SUBMITTED = "{\"response\":{\"id\":\"r-1\",\"form_id\":\"f-1\",\"form_version\":1,\"team_id\":\"acme\","
            + "\"collector_id\":\"web\",\"submitted_at\":1795341600000,\"locale\":\"en\",\"answers\":{\"q1\":{\"text\":\"hi\"}}}}";

    // The worked example of contract section 8: plugin -> events; team/plugin -> enabled, event_types.
    static final Map<String, List<String>> MANIFESTS = Map.of(
            "sms-notify", List.of("response.submitted"),
            "sheets-export", List.of("response.submitted", "response.updated"),
            "audit-log", List.of("form.created", "form.updated", "response.submitted", "response.updated"),
            "billing-sync", List.of("payment.received"));
    static final String[][] ENABLEMENTS = {
        {"acme", "sms-notify", "true", null},
        {"acme", "sheets-export", "true", "[\"response.updated\"]"},
        {"acme", "audit-log", "false", null},
        {"acme", "billing-sync", "true", null},
        {"globex", "audit-log", "true", "[]"},
        {"globex", "crm-push", "true", null},
    };
    static final String[] TEAMS = {"acme", "globex", "initech"};
    static final String[] TYPES = {"form.created", "form.updated", "response.submitted", "response.updated", "payment.received"};

    public static void main(String[] args) throws Exception {
        String bootstrap = "127.0.0.1:9092";
        int events = 10_000;
        int timeoutS = 120;
        boolean toggle = false;
        for (int i = 0; i < args.length; i += 2) {
            switch (args[i]) {
                case "--toggle" -> {
                    toggle = true;
                    i--;
                }
                case "--bootstrap" -> bootstrap = args[i + 1];
                case "--events" -> events = Integer.parseInt(args[i + 1]);
                case "--timeout-s" -> timeoutS = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("unknown flag " + args[i]);
            }
        }
        String run = "e2e-" + Long.toString(System.currentTimeMillis(), 36);
        if (toggle) {
            System.exit(toggle(bootstrap, run));
        }

        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(common)) {
            List<NewTopic> topics = new ArrayList<>();
            topics.add(new NewTopic("switchyard.plugins", 1, (short) 1).configs(Map.of("cleanup.policy", "compact")));
            topics.add(new NewTopic("switchyard.enablements", 1, (short) 1).configs(Map.of("cleanup.policy", "compact")));
            topics.add(new NewTopic("core.events", 6, (short) 1));
            topics.add(new NewTopic("core.events.dlq", 3, (short) 1));
            for (String p : MANIFESTS.keySet()) {
                topics.add(new NewTopic("plugin." + p + ".events", 3, (short) 1));
            }
            for (NewTopic t : topics) {
                try {
                    admin.createTopics(List.of(t)).all().get();
                    System.out.println("created " + t.name());
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw e;
                    }
                }
            }
        }

        Properties pp = new Properties();
        pp.putAll(common);
        pp.put("key.serializer", ByteArraySerializer.class.getName());
        pp.put("value.serializer", ByteArraySerializer.class.getName());
        pp.put("linger.ms", "5");
        pp.put("enable.idempotence", "true");

        // Expected: ce_id -> the plugins it goes to, or "dlq:<reason>".
        Map<String, Set<String>> expected = new HashMap<>();
        Map<String, byte[]> sentValue = new HashMap<>();
        Map<String, String> sentKey = new HashMap<>();
        Map<String, Integer> expectedPerTopic = new TreeMap<>();
        long started;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            for (var m : MANIFESTS.entrySet()) {
                String list = String.join(",", m.getValue().stream().map(e -> "\"" + e + "\"").toList());
                producer.send(new ProducerRecord<>("switchyard.plugins", b(m.getKey()), b("{\"id\":\"" + m.getKey()
                        + "\",\"name\":\"" + m.getKey() + "\",\"version\":\"1.0.0\",\"events\":[" + list + "]}")));
            }
            for (String[] e : ENABLEMENTS) {
                producer.send(new ProducerRecord<>("switchyard.enablements", b(e[0] + "/" + e[1]), b("{\"team_id\":\"" + e[0]
                        + "\",\"plugin_id\":\"" + e[1] + "\",\"enabled\":" + e[2]
                        + (e[3] == null ? "" : ",\"event_types\":" + e[3]) + ",\"updated_at\":\"2026-11-22T09:55:00Z\"}")));
            }
            producer.flush();
            // Control records and events are not ordered against each other (contract 7.3): give the peer's
            // global thread a moment to read the control records.
            Thread.sleep(3000);

            started = System.nanoTime();
            java.util.Random random = new java.util.Random(7);
            for (int i = 0; i < events; i++) {
                String id = run + "-" + i;
                String team = TEAMS[random.nextInt(TEAMS.length)];
                String type = TYPES[random.nextInt(TYPES.length)];
                boolean avro = type.equals("response.submitted") && random.nextInt(10) < 7;
                byte[] value = switch (type) {
                    case "response.submitted" -> avro ? AVRO_RESPONSE : b(SUBMITTED);
                    case "response.updated" -> b(SUBMITTED.substring(0, SUBMITTED.length() - 1)
                            + ",\"revision\":2,\"updated_by\":\"u\",\"updated_at\":1795365900000}");
                    case "form.created" -> b("{\"form\":" + FORM + ",\"created_by\":\"user-17\"}");
                    case "form.updated" -> b("{\"form\":" + FORM + ",\"previous_version\":1,\"updated_by\":\"u\"}");
                    default -> b("{\"amount\":12}");
                };
                RecordHeaders h = new RecordHeaders();
                h.add("ce_specversion", b("1.0"));
                h.add("ce_id", b(id));
                h.add("ce_source", b("/e2e"));
                String reason = null;
                int defect = random.nextInt(100);
                if (defect == 0) {
                    reason = "missing_header"; // no ce_type
                } else {
                    h.add("ce_type", b(type));
                }
                h.add("content-type", b(avro ? "application/avro" : "application/json"));
                h.add("traceparent", b("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
                if (defect == 1 && !type.equals("payment.received")) {
                    reason = avro ? "unknown_schema" : "invalid_payload";
                    value = avro ? AVRO_RESPONSE.clone() : b("{\"form\":12}");
                    if (avro) {
                        value[5] ^= 0x10;
                    }
                }
                Set<String> targets;
                if (reason != null) {
                    targets = Set.of("dlq:" + reason);
                } else {
                    targets = new java.util.TreeSet<>();
                    for (String[] e : ENABLEMENTS) {
                        List<String> subscribed = MANIFESTS.get(e[1]);
                        boolean filterOk = e[3] == null || e[3].equals("[]") || e[3].contains("\"" + type + "\"");
                        if (e[0].equals(team) && e[2].equals("true") && subscribed != null && subscribed.contains(type)
                                && filterOk) {
                            targets.add(e[1]);
                        }
                    }
                }
                expected.put(id, targets);
                sentValue.put(id, value);
                sentKey.put(id, team);
                for (String t : targets) {
                    expectedPerTopic.merge(t.startsWith("dlq:") ? "core.events.dlq" : "plugin." + t + ".events", 1, Integer::sum);
                }
                producer.send(new ProducerRecord<>("core.events", null, b(team), value, h));
            }
            producer.flush();
        }
        double produceS = (System.nanoTime() - started) / 1e9;
        int expectedTotal = expectedPerTopic.values().stream().mapToInt(Integer::intValue).sum();
        System.out.printf("run %s: produced %d events in %.1f s; expecting %s%n", run, events, produceS, expectedPerTopic);

        Properties cp = new Properties();
        cp.putAll(common);
        cp.put("key.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("isolation.level", "read_committed");
        cp.put("enable.auto.commit", "false");
        cp.put("max.poll.records", "5000");
        List<String> outTopics = new ArrayList<>();
        outTopics.add("core.events.dlq");
        for (String p : MANIFESTS.keySet()) {
            outTopics.add("plugin." + p + ".events");
        }
        Map<String, Integer> seen = new HashMap<>();
        Map<String, Integer> perTopic = new TreeMap<>();
        List<String> problems = new ArrayList<>();
        int matched = 0;
        long deadline = System.nanoTime() + timeoutS * 1_000_000_000L;
        long lastAt = System.nanoTime();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (String t : outTopics) {
                consumer.partitionsFor(t).forEach(pi -> parts.add(new TopicPartition(t, pi.partition())));
            }
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            while (matched < expectedTotal && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    String id = header(r, "ce_id");
                    if (id == null || !id.startsWith(run + "-")) {
                        continue; // an earlier run's
                    }
                    lastAt = System.nanoTime();
                    perTopic.merge(r.topic(), 1, Integer::sum);
                    String target = r.topic().equals("core.events.dlq") ? "dlq:" + header(r, "switchyard_error")
                            : r.topic().substring("plugin.".length(), r.topic().length() - ".events".length());
                    String pair = id + " " + target;
                    int n = seen.merge(pair, 1, Integer::sum);
                    if (n > 1) {
                        problems.add("duplicate: " + pair);
                    } else if (!expected.get(id).contains(target)) {
                        problems.add("unexpected: " + pair + " (expected " + expected.get(id) + ")");
                    } else {
                        matched++;
                    }
                    if (!Arrays.equals(r.value(), sentValue.get(id)) || !new String(r.key(), StandardCharsets.UTF_8).equals(sentKey.get(id))) {
                        problems.add("key or value changed: " + pair);
                    }
                    String source = header(r, "switchyard_source");
                    if (source == null || !source.startsWith("core.events/")) {
                        problems.add("no switchyard_source: " + pair);
                    }
                    Header last = r.headers().toArray()[r.headers().toArray().length - 1];
                    boolean dlq = r.topic().equals("core.events.dlq");
                    if (!dlq && (!last.key().equals("switchyard_source") || !"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".equals(header(r, "traceparent")))) {
                        problems.add("headers not passed through: " + pair);
                    }
                }
            }
            // A little longer, to catch duplicates or strays that come after the last expected record.
            long until = System.nanoTime() + 2_000_000_000L;
            while (System.nanoTime() < until) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    String id = header(r, "ce_id");
                    if (id != null && id.startsWith(run + "-")) {
                        problems.add("extra record after all expected ones: " + id + " in " + r.topic());
                    }
                }
            }
        }
        double allS = (lastAt - started) / 1e9;
        System.out.printf("read back %d of %d expected records %s; last one %.1f s after the first event was sent"
                + " (%.0f events/s end to end)%n", matched, expectedTotal, perTopic, allS, events / allS);
        if (matched < expectedTotal) {
            problems.add((expectedTotal - matched) + " expected records missing");
        }
        problems.stream().limit(20).forEach(p -> System.out.println("PROBLEM " + p));
        System.out.println(problems.isEmpty() ? "OK: every event routed exactly as the rule says, exactly once"
                : "FAILED: " + problems.size() + " problems");
        System.exit(problems.isEmpty() ? 0 : 1);
    }

    /**
     * --toggle: with the worked example's control records in place (run the main check once before), disables
     * acme/sms-notify while acme keeps sending response.submitted events every 50 ms, then enables it again, and
     * reports when the change took effect: the events routed to sms-notify must stop, then start again, each once.
     */
    static int toggle(String bootstrap, String run) throws Exception {
        Properties pp = new Properties();
        pp.put("bootstrap.servers", bootstrap);
        pp.put("key.serializer", ByteArraySerializer.class.getName());
        pp.put("value.serializer", ByteArraySerializer.class.getName());
        pp.put("linger.ms", "0");
        List<Long> sentAt = new ArrayList<>();
        long[] switchedAt = new long[2];
        int perPhase = 80;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
            for (int phase = 0; phase < 2; phase++) {
                boolean enabled = phase == 1;
                producer.send(new ProducerRecord<>("switchyard.enablements", b("acme/sms-notify"), b("{\"team_id\":\"acme\","
                        + "\"plugin_id\":\"sms-notify\",\"enabled\":" + enabled + ",\"updated_at\":\"2026-11-22T09:55:00Z\"}"))).get();
                switchedAt[phase] = System.nanoTime();
                for (int i = 0; i < perPhase; i++) {
                    int n = phase * perPhase + i;
                    RecordHeaders h = new RecordHeaders();
                    h.add("ce_specversion", b("1.0"));
                    h.add("ce_id", b(run + "-" + n));
                    h.add("ce_source", b("/e2e"));
                    h.add("ce_type", b("response.submitted"));
                    h.add("content-type", b("application/avro"));
                    producer.send(new ProducerRecord<>("core.events", null, b("acme"), AVRO_RESPONSE, h)).get();
                    sentAt.add(System.nanoTime());
                    Thread.sleep(50);
                }
            }
        }
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("key.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("value.deserializer", ByteArrayDeserializer.class.getName());
        cp.put("isolation.level", "read_committed");
        boolean[] routed = new boolean[2 * perPhase];
        int dups = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            List<TopicPartition> parts = new ArrayList<>();
            consumer.partitionsFor("plugin.sms-notify.events").forEach(pi -> parts.add(new TopicPartition(pi.topic(), pi.partition())));
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long until = System.nanoTime() + 10_000_000_000L;
            while (System.nanoTime() < until) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    String id = header(r, "ce_id");
                    if (id != null && id.startsWith(run + "-")) {
                        int n = Integer.parseInt(id.substring(run.length() + 1));
                        dups += routed[n] ? 1 : 0;
                        routed[n] = true;
                    }
                }
            }
        }
        StringBuilder pattern = new StringBuilder();
        for (boolean r : routed) {
            pattern.append(r ? '#' : '.');
        }
        System.out.println("routed to sms-notify (# = yes), one mark per event 50 ms apart, disabled at the first, enabled at the "
                + (perPhase + 1) + "th:");
        System.out.println(pattern.substring(0, perPhase));
        System.out.println(pattern.substring(perPhase));
        // The pattern must be #*.* then .*#* : one switch per phase, and the second phase must end enabled.
        boolean ok = dups == 0 && pattern.substring(0, perPhase).matches("#*\\.+") && pattern.substring(perPhase).matches("\\.*#+");
        int lastOn = pattern.substring(0, perPhase).lastIndexOf('#');
        int firstOn = pattern.substring(perPhase).indexOf('#');
        if (lastOn >= 0) {
            System.out.printf("disable took effect within %.0f ms%n", (sentAt.get(lastOn + 1) - switchedAt[0]) / 1e6);
        } else {
            System.out.println("disable took effect before the first event");
        }
        if (firstOn >= 0) {
            System.out.printf("enable took effect within %.0f ms%n", (sentAt.get(perPhase + firstOn) - switchedAt[1]) / 1e6);
        }
        System.out.println(ok ? "OK: the disable and the enable took effect once each, no duplicates" : "FAILED (duplicates: " + dups + ")");
        return ok ? 0 : 1;
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String header(ConsumerRecord<byte[], byte[]> r, String name) {
        Header h = r.headers().lastHeader(name);
        return h == null ? null : new String(h.value(), StandardCharsets.UTF_8);
    }
}
