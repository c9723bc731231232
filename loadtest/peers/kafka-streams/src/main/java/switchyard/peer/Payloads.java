package switchyard.peer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

/**
 * Payload validation of the four v1 event types (contract sections 5-6), the same checks the router makes:
 *
 * <ul>
 *   <li>{@code application/avro}: the single-object marker {@code C3 01}, the 8-byte CRC-64-AVRO fingerprint
 *       looked up among the known revisions of that type, then the whole body walked against that revision
 *       (truncation, trailing bytes, out-of-range enum index or union branch, invalid UTF-8, ints out of range);
 *   <li>{@code application/json}: one JSON object checked against the current schema with the contract's rules
 *       (bare unions, defaults for missing fields, unknown fields ignored, integers without fraction).
 * </ul>
 *
 * The schemas are the repository's {@code schemas/avro/*.avsc} (current) and {@code schemas/avro/released/v*}
 * (released revisions), copied into the jar at build time. Nothing is decoded into objects: the walk only checks.
 */
final class Payloads {
    static final String INVALID_PAYLOAD = "invalid_payload";
    static final String UNKNOWN_SCHEMA = "unknown_schema";
    static final List<String> V1_TYPES = List.of("form.created", "form.updated", "response.submitted", "response.updated");

    private static final int MAX_DEPTH = 64;
    private static final long MAX_ZERO_WIDTH_ITEMS = 100_000;

    /** A failed check: the contract's reason code and one sentence. */
    record Rejection(String reason, String detail) {}

    private static final class TypeSchemas {
        final Schema current;
        final long[] fingerprints;
        final Schema[] revisions;

        TypeSchemas(Schema current, long[] fingerprints, Schema[] revisions) {
            this.current = current;
            this.fingerprints = fingerprints;
            this.revisions = revisions;
        }
    }

    private final Map<String, TypeSchemas> types;
    private final ObjectMapper json = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private Payloads(Map<String, TypeSchemas> types) {
        this.types = types;
    }

    /** Loads the schemas bundled in the jar. */
    static Payloads load() {
        Map<String, TypeSchemas> types = new LinkedHashMap<>();
        for (String type : V1_TYPES) {
            Schema current = parse("switchyard/avro/" + type + ".avsc");
            if (current == null) {
                throw new IllegalStateException("the schema of " + type + " is not bundled in the jar");
            }
            List<Schema> revisions = new ArrayList<>();
            revisions.add(current);
            for (int v = 1; ; v++) {
                Schema released = parse("switchyard/avro/released/v" + v + "/" + type + ".avsc");
                if (released == null) {
                    break;
                }
                revisions.add(released);
            }
            List<Long> seen = new ArrayList<>();
            List<Schema> unique = new ArrayList<>();
            for (Schema s : revisions) {
                long fp = SchemaNormalization.parsingFingerprint64(s);
                if (!seen.contains(fp)) {
                    seen.add(fp);
                    unique.add(s);
                }
            }
            long[] fps = new long[seen.size()];
            for (int i = 0; i < fps.length; i++) {
                fps[i] = seen.get(i);
            }
            types.put(type, new TypeSchemas(current, fps, unique.toArray(new Schema[0])));
        }
        return new Payloads(types);
    }

    private static Schema parse(String resource) {
        try (InputStream in = Payloads.class.getClassLoader().getResourceAsStream(resource)) {
            return in == null ? null : new Schema.Parser().parse(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The fingerprints accepted for a v1 type, as little-endian uint64 values (contract section 6.2). */
    long[] fingerprints(String type) {
        return types.get(type).fingerprints.clone();
    }

    /** Whether {@code type} is one of the four v1 types. */
    boolean isV1(String type) {
        return types.containsKey(type);
    }

    /** Checks a value of a v1 type; null if it is valid (or the type is not a v1 type). */
    Rejection check(String type, boolean avro, byte[] value) {
        TypeSchemas schemas = types.get(type);
        if (schemas == null) {
            return null;
        }
        if (value == null) {
            return new Rejection(INVALID_PAYLOAD, "the " + type + " record has no value");
        }
        return avro ? checkAvro(type, schemas, value) : checkJson(type, schemas, value);
    }

    private static Rejection checkAvro(String type, TypeSchemas schemas, byte[] value) {
        if (value.length < 10 || value[0] != (byte) 0xC3 || value[1] != 0x01) {
            return new Rejection(INVALID_PAYLOAD, "the " + type + " value does not match its schema at /: an"
                    + " application/avro value must start with 0xC3 0x01 and an 8-byte schema fingerprint");
        }
        long fp = 0;
        for (int i = 9; i >= 2; i--) {
            fp = (fp << 8) | (value[i] & 0xffL);
        }
        Schema revision = null;
        for (int i = 0; i < schemas.fingerprints.length; i++) {
            if (schemas.fingerprints[i] == fp) {
                revision = schemas.revisions[i];
                break;
            }
        }
        if (revision == null) {
            StringBuilder hex = new StringBuilder();
            for (int i = 2; i < 10; i++) {
                hex.append(String.format("%02x", value[i] & 0xff));
            }
            return new Rejection(UNKNOWN_SCHEMA, "schema fingerprint " + hex + " is no known revision of " + type
                    + "; upgrade consumers before producers");
        }
        try {
            BinaryWalk walk = new BinaryWalk(value, 10);
            walk.skip(revision, 0);
            if (walk.pos != value.length) {
                throw new Invalid((value.length - walk.pos) + " bytes follow the end of the datum");
            }
            return null;
        } catch (Invalid e) {
            return new Rejection(INVALID_PAYLOAD, "the " + type + " value does not match its schema " + e.describe());
        }
    }

    private Rejection checkJson(String type, TypeSchemas schemas, byte[] value) {
        JsonNode root;
        try {
            root = json.readTree(value);
        } catch (JsonProcessingException e) {
            return new Rejection(INVALID_PAYLOAD, "the " + type + " value is not JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            return new Rejection(INVALID_PAYLOAD, "the " + type + " value is not JSON: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            return new Rejection(INVALID_PAYLOAD, "the " + type + " value is not a JSON object");
        }
        if (jsonCheck(schemas.current, root, false, 0) == null) {
            return null;
        }
        String why = jsonCheck(schemas.current, root, true, 0);
        return new Rejection(INVALID_PAYLOAD, "the " + type + " value does not match its schema at "
                + (why.startsWith(":") ? "/" + why : why));
    }

    private static final String FAIL = "";

    /**
     * Null if {@code v} fits {@code s}; otherwise a message ({@code at /pointer: what}) when {@code explain}, or
     * the empty string (no allocation) when not.
     */
    private static String jsonCheck(Schema s, JsonNode v, boolean explain, int depth) {
        if (depth > MAX_DEPTH) {
            return explain ? ": nested too deeply" : FAIL;
        }
        switch (s.getType()) {
            case NULL:
                return v.isNull() ? null : mismatch(explain, "null", v);
            case BOOLEAN:
                return v.isBoolean() ? null : mismatch(explain, "a boolean", v);
            case INT:
                if (!v.isIntegralNumber()) {
                    return mismatch(explain, "an integer", v);
                }
                return v.canConvertToInt() ? null : (explain ? ": " + v.asText() + " does not fit a 32-bit int" : FAIL);
            case LONG:
                return v.isIntegralNumber() && v.canConvertToLong() ? null : mismatch(explain, "a 64-bit integer", v);
            case FLOAT:
            case DOUBLE:
                return v.isNumber() ? null : mismatch(explain, "a number", v);
            case STRING:
                return v.isTextual() ? null : mismatch(explain, "a string", v);
            case BYTES:
            case FIXED: {
                if (!v.isTextual()) {
                    return mismatch(explain, "a string of bytes", v);
                }
                String text = v.textValue();
                for (int i = 0; i < text.length(); i++) {
                    if (text.charAt(i) > 0xff) {
                        return explain ? ": bytes are written one code point (0-255) each" : FAIL;
                    }
                }
                if (s.getType() == Schema.Type.FIXED && text.length() != s.getFixedSize()) {
                    return explain ? ": needs exactly " + s.getFixedSize() + " bytes, has " + text.length() : FAIL;
                }
                return null;
            }
            case ENUM: {
                if (!v.isTextual()) {
                    return mismatch(explain, "a string symbol", v);
                }
                // A symbol this revision does not know takes the enum's default (Avro schema resolution).
                if (s.hasEnumSymbol(v.textValue()) || (s.getEnumDefault() != null && s.hasEnumSymbol(s.getEnumDefault()))) {
                    return null;
                }
                return explain ? ": " + v + " is not one of " + String.join(", ", s.getEnumSymbols()) : FAIL;
            }
            case ARRAY: {
                if (!v.isArray()) {
                    return mismatch(explain, "an array", v);
                }
                for (int i = 0; i < v.size(); i++) {
                    String e = jsonCheck(s.getElementType(), v.get(i), explain, depth + 1);
                    if (e != null) {
                        return explain ? at(Integer.toString(i), e) : FAIL;
                    }
                }
                return null;
            }
            case MAP: {
                if (!v.isObject()) {
                    return mismatch(explain, "an object", v);
                }
                for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> entry = it.next();
                    String e = jsonCheck(s.getValueType(), entry.getValue(), explain, depth + 1);
                    if (e != null) {
                        return explain ? at(entry.getKey(), e) : FAIL;
                    }
                }
                return null;
            }
            case RECORD: {
                if (!v.isObject()) {
                    return mismatch(explain, "an object", v);
                }
                for (Schema.Field field : s.getFields()) {
                    JsonNode item = v.get(field.name());
                    if (item == null) {
                        if (field.hasDefaultValue()) {
                            continue;
                        }
                        return explain ? at(field.name(), ": is required") : FAIL;
                    }
                    String e = jsonCheck(field.schema(), item, explain, depth + 1);
                    if (e != null) {
                        return explain ? at(field.name(), e) : FAIL;
                    }
                }
                return null;
            }
            case UNION: {
                // Bare unions: null picks the null branch; any other value must fit some other branch. (The router
                // prefers a record branch covering every key when it encodes; for validity any fitting branch will do.)
                for (Schema branch : s.getTypes()) {
                    boolean isNull = branch.getType() == Schema.Type.NULL;
                    if (isNull != v.isNull()) {
                        continue;
                    }
                    if (jsonCheck(branch, v, false, depth + 1) == null) {
                        return null;
                    }
                }
                if (!explain) {
                    return FAIL;
                }
                List<String> kinds = new ArrayList<>();
                for (Schema branch : s.getTypes()) {
                    kinds.add(branch.getType() == Schema.Type.RECORD || branch.getType() == Schema.Type.ENUM
                            ? branch.getName() : branch.getType().getName());
                }
                return ": " + kindOf(v) + " fits none of " + String.join(" | ", kinds);
            }
            default:
                return explain ? ": unsupported schema type " + s.getType() : FAIL;
        }
    }

    private static String at(String segment, String inner) {
        return "/" + segment.replace("~", "~0").replace("/", "~1") + inner;
    }

    private static String mismatch(boolean explain, String expected, JsonNode found) {
        return explain ? ": expected " + expected + ", found " + kindOf(found) : FAIL;
    }

    private static String kindOf(JsonNode v) {
        if (v.isNull()) {
            return "null";
        } else if (v.isBoolean()) {
            return "a boolean";
        } else if (v.isNumber()) {
            return "a number";
        } else if (v.isTextual()) {
            return "a string";
        } else if (v.isArray()) {
            return "an array";
        } else {
            return "an object";
        }
    }

    /** A failed binary or JSON check; no stack trace (it is a normal outcome, not a bug). */
    private static final class Invalid extends RuntimeException {
        private final ArrayList<String> path = new ArrayList<>();

        Invalid(String message) {
            super(message, null, false, false);
        }

        Invalid at(String segment) {
            path.add(segment);
            return this;
        }

        String describe() {
            StringBuilder b = new StringBuilder("at ");
            for (int i = path.size() - 1; i >= 0; i--) {
                b.append('/').append(path.get(i).replace("~", "~0").replace("/", "~1"));
            }
            if (path.isEmpty()) {
                b.append('/');
            }
            return b.append(": ").append(getMessage()).toString();
        }
    }

    /** Walks one Avro binary datum without building it, as the router's {@code Skip} decoder does. */
    private static final class BinaryWalk {
        final byte[] buf;
        int pos;

        BinaryWalk(byte[] buf, int pos) {
            this.buf = buf;
            this.pos = pos;
        }

        void skip(Schema s, int depth) {
            if (depth > MAX_DEPTH) {
                throw new Invalid("nested too deeply");
            }
            switch (s.getType()) {
                case NULL:
                    return;
                case BOOLEAN: {
                    int b = take(1);
                    if (buf[b] != 0 && buf[b] != 1) {
                        throw new Invalid("boolean byte is " + (buf[b] & 0xff) + ", not 0 or 1");
                    }
                    return;
                }
                case INT: {
                    long v = readLong();
                    if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
                        throw new Invalid(v + " does not fit an int");
                    }
                    return;
                }
                case LONG:
                    readLong();
                    return;
                case FLOAT:
                    take(4);
                    return;
                case DOUBLE:
                    take(8);
                    return;
                case STRING:
                    checkUtf8(readLen());
                    return;
                case BYTES:
                    take(readLen());
                    return;
                case FIXED:
                    take(s.getFixedSize());
                    return;
                case ENUM: {
                    long index = readLong();
                    if (index < 0 || index >= s.getEnumSymbols().size()) {
                        throw new Invalid("enum index " + index + " is out of range");
                    }
                    return;
                }
                case UNION: {
                    long index = readLong();
                    List<Schema> branches = s.getTypes();
                    if (index < 0 || index >= branches.size()) {
                        throw new Invalid("union branch " + index + " is out of range");
                    }
                    skip(branches.get((int) index), depth + 1);
                    return;
                }
                case RECORD:
                    for (Schema.Field field : s.getFields()) {
                        try {
                            skip(field.schema(), depth + 1);
                        } catch (Invalid e) {
                            throw e.at(field.name());
                        }
                    }
                    return;
                case ARRAY: {
                    boolean zeroWidth = minWidth(s.getElementType(), 0) == 0;
                    long index = 0;
                    long count;
                    while ((count = readBlockCount(zeroWidth, index)) > 0) {
                        for (long i = 0; i < count; i++) {
                            try {
                                skip(s.getElementType(), depth + 1);
                            } catch (Invalid e) {
                                throw e.at(Long.toString(index));
                            }
                            index++;
                        }
                    }
                    return;
                }
                case MAP: {
                    long seen = 0;
                    long count;
                    while ((count = readBlockCount(false, seen)) > 0) {
                        for (long i = 0; i < count; i++) {
                            int keyAt;
                            int keyLen;
                            try {
                                keyLen = readLen();
                                keyAt = checkUtf8(keyLen);
                            } catch (Invalid e) {
                                throw e.at("#" + seen);
                            }
                            try {
                                skip(s.getValueType(), depth + 1);
                            } catch (Invalid e) {
                                throw e.at(new String(buf, keyAt, keyLen, StandardCharsets.UTF_8));
                            }
                            seen++;
                        }
                    }
                    return;
                }
                default:
                    throw new Invalid("unsupported schema type " + s.getType());
            }
        }

        /** The fewest bytes one datum can take; 0 means a block count alone bounds nothing. */
        static int minWidth(Schema s, int depth) {
            if (depth > MAX_DEPTH) {
                return 0;
            }
            switch (s.getType()) {
                case NULL:
                    return 0;
                case RECORD: {
                    int sum = 0;
                    for (Schema.Field f : s.getFields()) {
                        sum += minWidth(f.schema(), depth + 1);
                    }
                    return sum;
                }
                case FIXED:
                    return s.getFixedSize();
                case FLOAT:
                    return 4;
                case DOUBLE:
                    return 8;
                default:
                    return 1;
            }
        }

        /** Returns the index of the first of {@code len} bytes and moves past them. */
        int take(int len) {
            if (buf.length - pos < len) {
                throw new Invalid("truncated: needs " + len + " more bytes, " + (buf.length - pos) + " left");
            }
            int at = pos;
            pos += len;
            return at;
        }

        long readLong() {
            long value = 0;
            for (int shift = 0; shift < 70; shift += 7) {
                int b = buf[take(1)] & 0xff;
                if (shift == 63 && b > 1) {
                    throw new Invalid("varint overflows 64 bits");
                }
                value |= (long) (b & 0x7f) << shift;
                if ((b & 0x80) == 0) {
                    return (value >>> 1) ^ -(value & 1);
                }
            }
            throw new Invalid("varint longer than 10 bytes");
        }

        int readLen() {
            long len = readLong();
            if (len < 0) {
                throw new Invalid("negative length " + len);
            }
            if (len > buf.length - pos) {
                throw new Invalid("truncated: length " + len + " but " + (buf.length - pos) + " bytes left");
            }
            return (int) len;
        }

        /** Takes {@code len} bytes that must be UTF-8; returns where they start. */
        int checkUtf8(int len) {
            int at = take(len);
            if (!Text.isUtf8(buf, at, at + len)) {
                throw new Invalid("string is not valid UTF-8");
            }
            return at;
        }

        /** The item count of the next block; 0 at the terminating block. A negative count is followed by a byte size. */
        long readBlockCount(boolean zeroWidth, long soFar) {
            long count = readLong();
            if (count == 0) {
                return 0;
            }
            if (count < 0) {
                readLen();
                count = count == Long.MIN_VALUE ? Long.MAX_VALUE : -count;
            }
            long bound = zeroWidth ? MAX_ZERO_WIDTH_ITEMS : buf.length - pos;
            if (soFar + count < 0 || soFar + count > bound) {
                throw new Invalid("block of " + count + " items cannot fit the remaining data");
            }
            return count;
        }
    }
}
