package switchyard.peer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.AutoOffsetReset;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.GlobalKTable;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.processor.api.RecordMetadata;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The router's job as a Kafka Streams topology.
 *
 * <pre>
 *  switchyard.plugins ─────► GlobalKTable peer-plugins      plugin id → manifest (invalid = absent)
 *  switchyard.enablements ─► global store peer-teams        team → {enabled plugin → type filter}, re-keyed from
 *                                                           "team/plugin" by its state-update processor
 *
 *  core.events ─► processValues(check)         key, CloudEvents headers, payload; stamps switchyard_source
 *      ├─ rejected ─► core.events.dlq          + switchyard_error, switchyard_error_detail
 *      └─ accepted ─► processValues(lookup)    the team's enabled plugins whose filter admits the type (peer-teams)
 *                     ├─ flatMapValues         fan-out: one copy per such plugin
 *                     ├─ join(peer-plugins)    the plugin is registered and its manifest lists the type
 *                     └─ to(TopicNameExtractor)  plugin.&lt;id&gt;.events, key/value/headers unchanged
 * </pre>
 *
 * Each event costs one point lookup for its team and one per candidate copy for the manifest, in in-memory global
 * stores, and no iterator: opening a store iterator per event is slow in Kafka Streams 4.1 (KAFKA-19678: each
 * iterator registers and removes a metric). Global stores are complete before any event is processed, and control
 * changes apply as soon as the global thread reads them.
 */
public final class PeerTopology {
    static final String PLUGINS_STORE = "peer-plugins";
    static final String TEAMS_STORE = "peer-teams";

    static final String SOURCE_HEADER = "switchyard_source";
    static final String ERROR_HEADER = "switchyard_error";
    static final String DETAIL_HEADER = "switchyard_error_detail";

    /** Topic names and switches. */
    public record Settings(
            String inputTopic,
            String pluginsTopic,
            String enablementsTopic,
            String deadLetterTopic,
            String pluginTopicTemplate,
            boolean validatePayloads,
            boolean inputFromLatest) {
        public static Settings defaults() {
            return new Settings("core.events", "switchyard.plugins", "switchyard.enablements", "core.events.dlq",
                    "plugin.{plugin}.events", true, false);
        }
    }

    /** Running totals for the periodic stats line (approximate under EOS: an aborted batch is counted again). */
    public static final class Counters {
        public final LongAdder events = new LongAdder();
        public final LongAdder deadLetters = new LongAdder();
        public final LongAdder copies = new LongAdder();
    }

    /** An input event after the checks: either a rejection or the accepted event type. */
    record Checked(byte[] value, String type, String reason, String detail) {}

    /** One copy for one plugin; {@code topic} is set once the manifest join succeeded. */
    record Copy(byte[] value, String type, String plugin, String topic) {}

    private PeerTopology() {}

    public static Topology build(Settings settings, Counters counters) {
        Payloads payloads = Payloads.load();
        Serde<byte[]> bytes = Serdes.ByteArray();
        ConcurrentHashMap<String, String> topicNames = new ConcurrentHashMap<>();
        StreamsBuilder builder = new StreamsBuilder();

        GlobalKTable<String, Control.Plugin> plugins = builder.globalTable(
                settings.pluginsTopic(),
                Consumed.with(Serdes.String(), Control.pluginSerde()).withName("plugins-source"),
                Materialized.<String, Control.Plugin>as(Stores.inMemoryKeyValueStore(PLUGINS_STORE))
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Control.pluginSerde()));
        // Enablements arrive keyed "team/plugin"; the global store keeps them keyed by team, so that an event needs
        // one lookup. Its state-update processor re-keys them; Streams runs it on restore too (KAFKA-7663), and, as
        // for any global store, the store is complete before the stream threads process an event.
        builder.addGlobalStore(
                Stores.keyValueStoreBuilder(Stores.inMemoryKeyValueStore(TEAMS_STORE), Serdes.String(),
                        Control.teamPluginsSerde()).withLoggingDisabled(),
                settings.enablementsTopic(),
                Consumed.with(Serdes.String(), bytes).withName("enablements-source"),
                TeamIndexer::new);

        var branches = builder
                .stream(settings.inputTopic(), Consumed.with(bytes, bytes)
                        .withOffsetResetPolicy(settings.inputFromLatest() ? AutoOffsetReset.latest() : AutoOffsetReset.earliest())
                        .withName("core-events"))
                .processValues(() -> new Check(payloads, settings.validatePayloads(), counters), Named.as("check"))
                .split(Named.as("checked-"))
                .branch((key, checked) -> checked.reason() != null, Branched.as("rejected"))
                .defaultBranch(Branched.as("accepted"));

        branches.get("checked-rejected")
                .mapValues(Checked::value, Named.as("dead-letter-value"))
                .to(settings.deadLetterTopic(), Produced.with(bytes, bytes).withName("dead-letters"));

        KStream<byte[], Copy> copies = branches.get("checked-accepted")
                .processValues(TeamLookup::new, Named.as("team-plugins"))
                .flatMapValues(PeerTopology::fanOut, Named.as("fan-out"))
                .join(plugins,
                        (team, copy) -> copy.plugin(),
                        (copy, plugin) -> plugin.id().equals(copy.plugin()) && plugin.events().contains(copy.type())
                                ? new Copy(copy.value(), copy.type(), copy.plugin(), topicNames.computeIfAbsent(
                                        copy.plugin(), id -> settings.pluginTopicTemplate().replace("{plugin}", id)))
                                : null,
                        Named.as("plugin-manifest"))
                .filter((team, copy) -> copy != null, Named.as("subscribed"));
        if (counters != null) {
            copies = copies.peek((team, copy) -> counters.copies.increment(), Named.as("count-copies"));
        }
        Serializer<Copy> copyValue = (topic, copy) -> copy.value();
        Deserializer<Copy> unused = (topic, data) -> {
            throw new UnsupportedOperationException("the plugin topics are written, never read");
        };
        copies.to((team, copy, context) -> copy.topic(),
                Produced.with(bytes, Serdes.serdeFrom(copyValue, unused)).withName("plugin-topics"));
        return builder.build();
    }

    /** An accepted event and the plugins its team enabled for its type (before the manifest check). */
    record Candidates(byte[] value, String type, List<String> plugins) {}

    private static List<Copy> fanOut(Candidates candidates) {
        List<Copy> out = new ArrayList<>(candidates.plugins().size());
        for (String plugin : candidates.plugins()) {
            out.add(new Copy(candidates.value(), candidates.type(), plugin, null));
        }
        return out;
    }

    /** Checks 1-8 of contract section 9.3, in the router's order, and stamps {@code switchyard_source}. */
    static final class Check implements FixedKeyProcessor<byte[], byte[], Checked> {
        private final Payloads payloads;
        private final boolean validatePayloads;
        private final Counters counters;
        private FixedKeyProcessorContext<byte[], Checked> context;

        Check(Payloads payloads, boolean validatePayloads, Counters counters) {
            this.payloads = payloads;
            this.validatePayloads = validatePayloads;
            this.counters = counters;
        }

        @Override
        public void init(FixedKeyProcessorContext<byte[], Checked> context) {
            this.context = context;
        }

        @Override
        public void process(FixedKeyRecord<byte[], byte[]> record) {
            Headers headers = record.headers();
            RecordMetadata meta = context.recordMetadata().orElseThrow();
            headers.add(SOURCE_HEADER, (meta.topic() + "/" + meta.partition() + "/" + meta.offset())
                    .getBytes(StandardCharsets.UTF_8));
            Checked checked = check(record.key(), headers, record.value());
            if (counters != null) {
                counters.events.increment();
                if (checked.reason() != null) {
                    counters.deadLetters.increment();
                }
            }
            if (checked.reason() != null) {
                headers.add(ERROR_HEADER, checked.reason().getBytes(StandardCharsets.UTF_8));
                headers.add(DETAIL_HEADER, checked.detail().getBytes(StandardCharsets.UTF_8));
            }
            context.forward(record.withValue(checked));
        }

        private static final String[] NAMES = {
            "ce_specversion", "ce_id", "ce_source", "ce_type", "content-type", "ce_time", "ce_subject", "ce_teamid"
        };

        private static int slot(String name) {
            switch (name) {
                case "ce_specversion":
                    return 0;
                case "ce_id":
                    return 1;
                case "ce_source":
                    return 2;
                case "ce_type":
                    return 3;
                case "content-type":
                    return 4;
                case "ce_time":
                    return 5;
                case "ce_subject":
                    return 6;
                case "ce_teamid":
                    return 7;
                default:
                    return -1;
            }
        }

        Checked check(byte[] key, Headers headers, byte[] value) {
            if (key == null) {
                return reject(value, "missing_key", "the record has no key; it must be the team id");
            }
            if (!Text.isTeamId(key)) {
                return reject(value, "invalid_key", "the key is not a valid team id");
            }
            byte[][] raw = new byte[8][];
            int seen = 0;
            for (Header h : headers) {
                int i = slot(h.key());
                if (i < 0) {
                    continue;
                }
                if ((seen & (1 << i)) != 0) {
                    return reject(value, "invalid_header", "the header " + h.key() + " appears more than once");
                }
                seen |= 1 << i;
                raw[i] = h.value();
            }
            String[] text = new String[8];
            for (int i = 0; i < 8; i++) {
                if ((seen & (1 << i)) == 0) {
                    if (i < 5) {
                        return reject(value, "missing_header", "the required header " + NAMES[i] + " is missing");
                    }
                    continue;
                }
                if (raw[i] == null) {
                    return reject(value, "invalid_header", "the header " + NAMES[i] + " has a null value");
                }
                String t = Text.utf8OrNull(raw[i]);
                if (t == null) {
                    return reject(value, "invalid_header", "the header " + NAMES[i] + " is not UTF-8");
                }
                if (t.isEmpty()) {
                    return reject(value, "invalid_header", "the header " + NAMES[i] + " is empty");
                }
                text[i] = t;
                if (i == 4 && !"1.0".equals(text[0])) {
                    // The router checks ce_specversion's value after the five required headers, before the optional ones.
                    return reject(value, "invalid_header", "ce_specversion is \"" + text[0] + "\"; only \"1.0\" is supported");
                }
            }
            if (text[5] != null && !Text.isRfc3339(text[5])) {
                return reject(value, "invalid_header", "ce_time \"" + text[5] + "\" is not an RFC 3339 time");
            }
            // A valid key is ASCII, so its ISO-8859-1 decoding is the team id.
            if (text[7] != null && !text[7].equals(new String(key, StandardCharsets.ISO_8859_1))) {
                return reject(value, "teamid_mismatch", "ce_teamid \"" + text[7] + "\" differs from the record key");
            }
            Boolean avro = contentType(text[4]);
            if (avro == null) {
                return reject(value, "unsupported_content_type",
                        "content-type \"" + text[4] + "\" is not application/avro or application/json");
            }
            if (validatePayloads) {
                Payloads.Rejection r = payloads.check(text[3], avro, value);
                if (r != null) {
                    return reject(value, r.reason(), r.detail());
                }
            }
            return new Checked(value, text[3], null, null);
        }

        /** TRUE for application/avro, FALSE for application/json, null otherwise (parameters ignored, case-insensitive). */
        static Boolean contentType(String header) {
            int semi = header.indexOf(';');
            String media = (semi < 0 ? header : header.substring(0, semi)).strip();
            if (media.equalsIgnoreCase("application/avro")) {
                return Boolean.TRUE;
            }
            if (media.equalsIgnoreCase("application/json")) {
                return Boolean.FALSE;
            }
            return null;
        }

        private static Checked reject(byte[] value, String reason, String detail) {
            return new Checked(value, null, reason, detail);
        }
    }

    /**
     * The state-update processor of the {@code peer-teams} global store: applies one {@code switchyard.enablements}
     * record to its team's entry. An invalid record counts as a tombstone of its key (section 7.3); a record whose
     * key is not {@code <team id>/<plugin id>} changes nothing.
     */
    static final class TeamIndexer implements Processor<String, byte[], Void, Void> {
        private KeyValueStore<String, Control.TeamPlugins> teams;

        @Override
        public void init(ProcessorContext<Void, Void> context) {
            teams = context.getStateStore(TEAMS_STORE);
        }

        @Override
        public void process(Record<String, byte[]> record) {
            String key = record.key();
            int slash = key == null ? -1 : key.indexOf('/');
            if (slash < 0 || !Text.isTeamId(key.substring(0, slash)) || !Text.isPluginId(key.substring(slash + 1))) {
                return;
            }
            String team = key.substring(0, slash);
            Control.Enablement e = Control.parseEnablement(key, record.value());
            Control.TeamPlugins current = teams.get(team);
            if (current == null) {
                current = Control.TeamPlugins.EMPTY;
            }
            Control.TeamPlugins next = e == null ? current.without(key.substring(slash + 1)) : current.with(e);
            if (next.plugins().isEmpty()) {
                teams.delete(team);
            } else if (next != current) {
                teams.put(team, next);
            }
        }
    }

    /** Looks the event's team up in the {@code peer-teams} global store: its enabled plugins that admit the type. */
    static final class TeamLookup implements FixedKeyProcessor<byte[], Checked, Candidates> {
        private FixedKeyProcessorContext<byte[], Candidates> context;
        private ReadOnlyKeyValueStore<String, Control.TeamPlugins> teams;

        @Override
        public void init(FixedKeyProcessorContext<byte[], Candidates> context) {
            this.context = context;
            this.teams = context.getStateStore(TEAMS_STORE);
        }

        @Override
        public void process(FixedKeyRecord<byte[], Checked> record) {
            // A valid key is ASCII, so its ISO-8859-1 decoding is the team id.
            Control.TeamPlugins enabled = teams.get(new String(record.key(), StandardCharsets.ISO_8859_1));
            if (enabled == null) {
                return; // unrouted: no enablement
            }
            Checked checked = record.value();
            List<String> plugins = enabled.admitting(checked.type());
            if (!plugins.isEmpty()) {
                context.forward(record.withValue(new Candidates(checked.value(), checked.type(), plugins)));
            }
        }
    }
}
