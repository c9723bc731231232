package switchyard.peer;

import java.nio.charset.StandardCharsets;

/** The contract's small text rules (section 3 identifiers, UTF-8, RFC 3339), without allocation where it matters. */
final class Text {
    private Text() {}

    static final int TEAM_ID_MAX_LEN = 128;
    static final int PLUGIN_ID_MAX_LEN = 64;
    static final int EVENT_TYPE_MAX_LEN = 256;

    /** A team id: 1-128 bytes of {@code [A-Za-z0-9._-]}. */
    static boolean isTeamId(byte[] id) {
        if (id.length == 0 || id.length > TEAM_ID_MAX_LEN) {
            return false;
        }
        for (byte b : id) {
            if (!((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
                    || b == '.' || b == '_' || b == '-')) {
                return false;
            }
        }
        return true;
    }

    static boolean isTeamId(String id) {
        return id.length() <= TEAM_ID_MAX_LEN && isTeamId(id.getBytes(StandardCharsets.UTF_8));
    }

    /** A plugin id: 1-64 bytes of {@code [a-z0-9-]}, starting with a lowercase letter. */
    static boolean isPluginId(String id) {
        int n = id.length();
        if (n == 0 || n > PLUGIN_ID_MAX_LEN) {
            return false;
        }
        char first = id.charAt(0);
        if (first < 'a' || first > 'z') {
            return false;
        }
        for (int i = 0; i < n; i++) {
            char c = id.charAt(i);
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
                return false;
            }
        }
        return true;
    }

    /** An event type name in a manifest or enablement: 1-256 UTF-8 bytes, no whitespace, no control characters. */
    static boolean isEventTypeName(String t) {
        if (t.isEmpty() || t.getBytes(StandardCharsets.UTF_8).length > EVENT_TYPE_MAX_LEN) {
            return false;
        }
        for (int i = 0; i < t.length(); ) {
            int cp = t.codePointAt(i);
            // Rust's char::is_control (Cc) and char::is_whitespace (Unicode White_Space).
            if (Character.isISOControl(cp) || Character.isWhitespace(cp) || Character.isSpaceChar(cp)) {
                return false;
            }
            i += Character.charCount(cp);
        }
        return true;
    }

    /** Decodes strict UTF-8, or returns null if the bytes are not valid UTF-8. ASCII, the common case, is fast. */
    static String utf8OrNull(byte[] bytes) {
        boolean ascii = true;
        for (byte b : bytes) {
            if (b < 0) {
                ascii = false;
                break;
            }
        }
        if (ascii) {
            return new String(bytes, StandardCharsets.ISO_8859_1);
        }
        return isUtf8(bytes, 0, bytes.length) ? new String(bytes, StandardCharsets.UTF_8) : null;
    }

    /** Whether {@code bytes[from, to)} is well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
    static boolean isUtf8(byte[] bytes, int from, int to) {
        int i = from;
        while (i < to) {
            int b = bytes[i] & 0xff;
            if (b < 0x80) {
                i++;
                continue;
            }
            int need;
            int min;
            int cp;
            if (b >= 0xc2 && b <= 0xdf) {
                need = 1;
                min = 0x80;
                cp = b & 0x1f;
            } else if (b >= 0xe0 && b <= 0xef) {
                need = 2;
                min = 0x800;
                cp = b & 0x0f;
            } else if (b >= 0xf0 && b <= 0xf4) {
                need = 3;
                min = 0x10000;
                cp = b & 0x07;
            } else {
                return false;
            }
            if (to - i <= need) {
                return false;
            }
            for (int k = 1; k <= need; k++) {
                int c = bytes[i + k] & 0xff;
                if ((c & 0xc0) != 0x80) {
                    return false;
                }
                cp = (cp << 6) | (c & 0x3f);
            }
            if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                return false;
            }
            i += need + 1;
        }
        return true;
    }

    /**
     * RFC 3339 date-time as the Rust {@code time} crate's {@code Rfc3339} parser accepts it:
     * {@code YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)}, {@code T}/{@code t} and {@code Z}/{@code z}
     * in either case, real calendar dates. Leap seconds ({@code :60}) are refused.
     */
    static boolean isRfc3339(String s) {
        int n = s.length();
        if (n < 20) {
            return false;
        }
        if (!digits(s, 0, 4) || s.charAt(4) != '-' || !digits(s, 5, 2) || s.charAt(7) != '-' || !digits(s, 8, 2)) {
            return false;
        }
        char sep = s.charAt(10);
        if (sep != 'T' && sep != 't') {
            return false;
        }
        if (!digits(s, 11, 2) || s.charAt(13) != ':' || !digits(s, 14, 2) || s.charAt(16) != ':' || !digits(s, 17, 2)) {
            return false;
        }
        int year = num(s, 0, 4);
        int month = num(s, 5, 2);
        int day = num(s, 8, 2);
        if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) {
            return false;
        }
        if (num(s, 11, 2) > 23 || num(s, 14, 2) > 59 || num(s, 17, 2) > 59) {
            return false;
        }
        int i = 19;
        if (s.charAt(i) == '.') {
            int start = ++i;
            while (i < n && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
                i++;
            }
            if (i == start) {
                return false;
            }
        }
        if (i >= n) {
            return false;
        }
        char z = s.charAt(i);
        if (z == 'Z' || z == 'z') {
            return i + 1 == n;
        }
        if ((z != '+' && z != '-') || n - i != 6) {
            return false;
        }
        return digits(s, i + 1, 2) && s.charAt(i + 3) == ':' && digits(s, i + 4, 2)
                && num(s, i + 1, 2) <= 23 && num(s, i + 4, 2) <= 59;
    }

    private static boolean digits(String s, int from, int len) {
        for (int i = from; i < from + len; i++) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                return false;
            }
        }
        return true;
    }

    private static int num(String s, int from, int len) {
        int v = 0;
        for (int i = from; i < from + len; i++) {
            v = v * 10 + (s.charAt(i) - '0');
        }
        return v;
    }

    private static int daysIn(int year, int month) {
        switch (month) {
            case 2:
                boolean leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
                return leap ? 29 : 28;
            case 4:
            case 6:
            case 9:
            case 11:
                return 30;
            default:
                return 31;
        }
    }
}
