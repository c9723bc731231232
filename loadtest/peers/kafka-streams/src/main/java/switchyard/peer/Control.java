package switchyard.peer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import java.util.regex.Pattern;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;

/**
 * The control records of contract section 7: plugin manifests ({@code switchyard.plugins}) and enablements
 * ({@code switchyard.enablements}), the per-team view of the enablements, and their serdes.
 *
 * <p>An invalid record counts as a tombstone of its key (section 7.3). Manifests: the deserializer returns null for
 * an invalid value, which the plugins GlobalKTable treats as a delete; the one check that needs the key (the
 * manifest's {@code id}) is made by the join, where the key is at hand. Enablements are parsed together with their
 * key before they are applied to the team-keyed store, so an invalid one removes its pair there.
 *
 * <p>The stores keep a value's bytes unchanged (the serializer writes back the bytes it was parsed from), so a store
 * restored from its topic and one filled by live processing hold the same bytes. Reading a store value deserializes
 * it; parsed values are memoised by their bytes, so the per-event lookups do not parse JSON again.
 */
final class Control {
    private Control() {}

    /** A valid manifest: the fields the routing rule uses. */
    record Plugin(String id, Set<String> events, byte[] raw) {}

    /** A valid enablement. {@code eventTypes} null means every type the plugin subscribes to. */
    record Enablement(String teamId, String pluginId, boolean enabled, Set<String> eventTypes, byte[] raw) {}

    /** serde_json with derived structs refuses a repeated field and trailing content; so does this. */
    private static final ObjectMapper STRICT = new ObjectMapper(
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build())
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    /** Semantic Versioning 2.0 (semver.org's regular expression). */
    private static final Pattern SEMVER = Pattern.compile(
            "^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)"
                    + "(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                    + "(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$");

    /** Parses a manifest value; null if it is not a valid manifest (without the key check). */
    static Plugin parsePlugin(byte[] raw) {
        JsonNode m = readObject(raw);
        if (m == null) {
            return null;
        }
        String id = text(m, "id");
        String name = text(m, "name");
        String version = text(m, "version");
        if (id == null || name == null || version == null || !Text.isPluginId(id) || isBlank(name)
                || !isSemver(version)) {
            return null;
        }
        JsonNode description = m.get("description");
        if (description != null && !description.isTextual()) {
            return null;
        }
        JsonNode url = m.get("url");
        if (url != null && !url.isNull()) {
            if (!url.isTextual() || !(url.textValue().startsWith("http://") || url.textValue().startsWith("https://"))) {
                return null;
            }
        }
        Set<String> events = strings(m.get("events"));
        if (events == null) {
            return null;
        }
        JsonNode actions = m.get("actions");
        if (actions != null && strings(actions) == null) {
            return null;
        }
        JsonNode configSchema = m.get("config_schema");
        if (configSchema != null && !configSchema.isNull() && !configSchema.isObject()) {
            return null;
        }
        return new Plugin(id, Set.copyOf(events), raw);
    }

    /**
     * Parses an enablement record; null if it is not valid (section 7.3), including a key that is not
     * {@code <team id>/<plugin id>} of the value's own fields, and a tombstone.
     */
    static Enablement parseEnablement(String key, byte[] raw) {
        if (key == null || raw == null) {
            return null;
        }
        int slash = key.indexOf('/');
        Enablement e = parseEnablementValue(raw);
        if (slash < 0 || e == null || !key.substring(0, slash).equals(e.teamId())
                || !key.substring(slash + 1).equals(e.pluginId())) {
            return null;
        }
        return e;
    }

    /** Parses an enablement value without the key check; null if it is not a valid enablement. */
    static Enablement parseEnablementValue(byte[] raw) {
        JsonNode e = readObject(raw);
        if (e == null) {
            return null;
        }
        String team = text(e, "team_id");
        String plugin = text(e, "plugin_id");
        String updatedAt = text(e, "updated_at");
        JsonNode enabled = e.get("enabled");
        if (team == null || plugin == null || updatedAt == null || enabled == null || !enabled.isBoolean()
                || !Text.isTeamId(team) || !Text.isPluginId(plugin) || !Text.isRfc3339(updatedAt)) {
            return null;
        }
        JsonNode types = e.get("event_types");
        Set<String> eventTypes = null;
        if (types != null && !types.isNull()) {
            eventTypes = strings(types);
            if (eventTypes == null) {
                return null;
            }
            // [] means every type of the plugin, the same as absent.
            eventTypes = eventTypes.isEmpty() ? null : Set.copyOf(eventTypes);
        }
        return new Enablement(team, plugin, enabled.booleanValue(), eventTypes, raw);
    }

    /**
     * One team's enabled plugins, the value of the team-keyed GlobalKTable: plugin id to its type filter (an empty
     * set = every type the plugin subscribes to). Immutable; serialized as one line per plugin, {@code <plugin id>}
     * then its filter types, separated by spaces (neither may contain whitespace).
     */
    record TeamPlugins(TreeMap<String, Set<String>> plugins, byte[] raw) {
        static final TeamPlugins EMPTY = new TeamPlugins(new TreeMap<>(), new byte[0]);

        /** The plugins enabled for an event of {@code type}, before the manifest check. */
        List<String> admitting(String type) {
            List<String> out = new ArrayList<>(plugins.size());
            for (Map.Entry<String, Set<String>> e : plugins.entrySet()) {
                if (e.getValue().isEmpty() || e.getValue().contains(type)) {
                    out.add(e.getKey());
                }
            }
            return out;
        }

        /** This team with {@code e} applied: an enabled pair is set, a disabled one removed. */
        TeamPlugins with(Enablement e) {
            TreeMap<String, Set<String>> next = new TreeMap<>(plugins);
            if (e.enabled()) {
                next.put(e.pluginId(), e.eventTypes() == null ? Set.of() : e.eventTypes());
            } else {
                next.remove(e.pluginId());
            }
            return of(next);
        }

        TeamPlugins without(String pluginId) {
            if (!plugins.containsKey(pluginId)) {
                return this;
            }
            TreeMap<String, Set<String>> next = new TreeMap<>(plugins);
            next.remove(pluginId);
            return of(next);
        }

        static TeamPlugins of(TreeMap<String, Set<String>> plugins) {
            StringBuilder b = new StringBuilder();
            for (Map.Entry<String, Set<String>> e : plugins.entrySet()) {
                b.append(e.getKey());
                for (String t : new TreeSet<>(e.getValue())) {
                    b.append(' ').append(t);
                }
                b.append('\n');
            }
            return new TeamPlugins(plugins, b.toString().getBytes(StandardCharsets.UTF_8));
        }

        static TeamPlugins parse(byte[] raw) {
            TreeMap<String, Set<String>> plugins = new TreeMap<>();
            for (String line : new String(raw, StandardCharsets.UTF_8).split("\n")) {
                if (line.isEmpty()) {
                    continue;
                }
                String[] parts = line.split(" ");
                plugins.put(parts[0], Set.of(Arrays.copyOfRange(parts, 1, parts.length)));
            }
            return new TeamPlugins(plugins, raw);
        }
    }

    private static JsonNode readObject(byte[] raw) {
        try {
            JsonNode node = STRICT.readTree(raw);
            return node != null && node.isObject() ? node : null;
        } catch (Exception e) {
            return null;
        }
    }

    /** The string field {@code name}, or null if it is absent or not a string. */
    private static String text(JsonNode object, String name) {
        JsonNode v = object.get(name);
        return v != null && v.isTextual() ? v.textValue() : null;
    }

    /** An array of valid event type names, or null if it is not one. */
    private static Set<String> strings(JsonNode array) {
        if (array == null || !array.isArray()) {
            return null;
        }
        Set<String> out = new HashSet<>();
        for (Iterator<JsonNode> it = array.elements(); it.hasNext(); ) {
            JsonNode item = it.next();
            if (!item.isTextual() || !Text.isEventTypeName(item.textValue())) {
                return null;
            }
            out.add(item.textValue());
        }
        return out;
    }

    private static boolean isBlank(String s) {
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            if (!(Character.isWhitespace(cp) || Character.isSpaceChar(cp) || cp == 0x85)) {
                return false;
            }
            i += Character.charCount(cp);
        }
        return true;
    }

    private static boolean isSemver(String v) {
        java.util.regex.Matcher m = SEMVER.matcher(v);
        if (!m.matches()) {
            return false;
        }
        try {
            for (int g = 1; g <= 3; g++) {
                Long.parseUnsignedLong(m.group(g));
            }
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** A serde that keeps the raw bytes and memoises the parse by content. */
    private static final class MemoSerde<T> implements Serializer<T>, Deserializer<T> {
        private static final Object INVALID = new Object();
        private static final int MAX_ENTRIES = 200_000;
        private final ConcurrentHashMap<Bytes, Object> memo = new ConcurrentHashMap<>();
        private final Function<byte[], T> parse;
        private final Function<T, byte[]> raw;

        MemoSerde(Function<byte[], T> parse, Function<T, byte[]> raw) {
            this.parse = parse;
            this.raw = raw;
        }

        @Override
        public byte[] serialize(String topic, T value) {
            return value == null ? null : raw.apply(value);
        }

        @Override
        @SuppressWarnings("unchecked")
        public T deserialize(String topic, byte[] data) {
            if (data == null) {
                return null;
            }
            Bytes key = Bytes.wrap(data);
            Object hit = memo.get(key);
            if (hit == null) {
                T parsed = parse.apply(data);
                hit = parsed == null ? INVALID : parsed;
                if (memo.size() >= MAX_ENTRIES) {
                    memo.clear();
                }
                memo.put(key, hit);
            }
            return hit == INVALID ? null : (T) hit;
        }

        @Override
        public void configure(java.util.Map<String, ?> configs, boolean isKey) {}

        @Override
        public void close() {}
    }

    static Serde<Plugin> pluginSerde() {
        MemoSerde<Plugin> s = new MemoSerde<>(Control::parsePlugin, Plugin::raw);
        return Serdes.serdeFrom(s, s);
    }

    static Serde<TeamPlugins> teamPluginsSerde() {
        MemoSerde<TeamPlugins> s = new MemoSerde<>(TeamPlugins::parse, TeamPlugins::raw);
        return Serdes.serdeFrom(s, s);
    }
}
