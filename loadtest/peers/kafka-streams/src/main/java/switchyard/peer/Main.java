package switchyard.peer;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sun.misc.Signal;

/**
 * Runs the peer: parses flags (and {@code STREAMS_PEER_*} environment variables), starts Kafka Streams, prints
 * {@code switchyard-streams-peer: RUNNING} on stdout once the state is RUNNING, and closes cleanly on SIGTERM or
 * SIGINT (exit 0). A fatal Streams error exits 1; bad flags exit 2.
 */
public final class Main {
    private static final Logger LOG = LoggerFactory.getLogger("switchyard.peer");
    static final String READY_LINE = "switchyard-streams-peer: RUNNING";

    /** Flag name, default, help. The environment variable is STREAMS_PEER_ + the name in upper case with '_'. */
    private static final String[][] OPTIONS = {
        {"bootstrap-servers", "127.0.0.1:9092", "Kafka bootstrap servers"},
        {"application-id", "switchyard-streams-peer", "Streams application.id (consumer group, transactional ids)"},
        {"input-topic", "core.events", "the core events topic"},
        {"plugins-topic", "switchyard.plugins", "the compacted plugin manifests topic"},
        {"enablements-topic", "switchyard.enablements", "the compacted enablements topic"},
        {"dead-letter-topic", "core.events.dlq", "the dead-letter topic"},
        {"plugin-topic-template", "plugin.{plugin}.events", "a plugin's topic; {plugin} becomes the plugin id"},
        {"input-offset-reset", "earliest", "where a new application id starts reading the input topic: earliest or latest"
            + " (the control topics are always read from the beginning)"},
        {"state-dir", System.getProperty("java.io.tmpdir") + "/switchyard-streams-peer", "Streams state.dir"},
        {"processing-guarantee", "exactly_once_v2", "exactly_once_v2 or at_least_once"},
        {"commit-interval-ms", "", "commit.interval.ms (default: Streams' default, 100 for exactly_once_v2, 30000 for at_least_once)"},
        {"threads", "1", "num.stream.threads"},
        {"validate-payloads", "true", "check the v1 payloads against their schemas, as the router does by default"},
        {"stats-interval-s", "10", "log a counters line to stderr this often; 0 = never"},
    };

    private Main() {}

    public static void main(String[] args) {
        Map<String, String> options;
        List<String> extra = new ArrayList<>();
        try {
            options = parse(args, extra);
        } catch (IllegalArgumentException e) {
            System.err.println("switchyard-streams-peer: " + e.getMessage());
            System.err.println(usage());
            System.exit(2);
            return;
        }
        if (options == null) {
            System.out.println(usage());
            return;
        }
        String guarantee = options.get("processing-guarantee");
        if (!guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2) && !guarantee.equals(StreamsConfig.AT_LEAST_ONCE)) {
            System.err.println("switchyard-streams-peer: --processing-guarantee must be exactly_once_v2 or at_least_once");
            System.exit(2);
        }
        if (!List.of("earliest", "latest").contains(options.get("input-offset-reset"))) {
            System.err.println("switchyard-streams-peer: --input-offset-reset must be earliest or latest");
            System.exit(2);
        }

        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, options.get("bootstrap-servers"));
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, options.get("application-id"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, Path.of(options.get("state-dir")).toAbsolutePath().toString());
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, options.get("threads"));
        if (!options.get("commit-interval-ms").isEmpty()) {
            props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, options.get("commit-interval-ms"));
        }
        // The router always reads read_committed; exactly_once_v2 sets this anyway, at_least_once would not.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.ISOLATION_LEVEL_CONFIG), "read_committed");
        for (String kv : extra) {
            int eq = kv.indexOf('=');
            props.put(kv.substring(0, eq), kv.substring(eq + 1));
        }

        PeerTopology.Settings settings = new PeerTopology.Settings(
                options.get("input-topic"),
                options.get("plugins-topic"),
                options.get("enablements-topic"),
                options.get("dead-letter-topic"),
                options.get("plugin-topic-template"),
                Boolean.parseBoolean(options.get("validate-payloads")),
                options.get("input-offset-reset").equals("latest"));

        PeerTopology.Counters counters = new PeerTopology.Counters();
        Topology topology = PeerTopology.build(settings, counters);
        LOG.info("topology:\n{}", topology.describe());

        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch stop = new CountDownLatch(1);
        AtomicInteger exitCode = new AtomicInteger(0);
        AtomicBoolean announced = new AtomicBoolean(false);
        streams.setStateListener((now, before) -> {
            LOG.info("state {} -> {}", before, now);
            if (now == KafkaStreams.State.RUNNING && announced.compareAndSet(false, true)) {
                System.out.println(READY_LINE);
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR) {
                exitCode.set(1);
                stop.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            LOG.error("a stream thread failed; shutting the client down", e);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });

        Signal.handle(new Signal("TERM"), s -> stop.countDown());
        Signal.handle(new Signal("INT"), s -> stop.countDown());

        ScheduledExecutorService stats = null;
        long statsInterval = Long.parseLong(options.get("stats-interval-s"));
        if (statsInterval > 0) {
            stats = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "peer-stats");
                t.setDaemon(true);
                return t;
            });
            long[] last = {0, System.nanoTime()};
            stats.scheduleAtFixedRate(() -> {
                long events = counters.events.sum();
                long now = System.nanoTime();
                double rate = (events - last[0]) / ((now - last[1]) / 1e9);
                last[0] = events;
                last[1] = now;
                LOG.info(String.format(Locale.ROOT,
                        "stats: events=%d dead_letters=%d copies=%d rate=%.0f/s",
                        events, counters.deadLetters.sum(), counters.copies.sum(), rate));
            }, statsInterval, statsInterval, TimeUnit.SECONDS);
        }

        streams.start();
        try {
            stop.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        LOG.info("stopping");
        if (stats != null) {
            stats.shutdownNow();
        }
        // Kafka Streams 4.1 does not leave the consumer group on close (dynamic members), so a restart with the same
        // application id within session.timeout.ms (45 s) waits for the old member to expire.
        boolean closed = streams.close(Duration.ofSeconds(30));
        if (!closed) {
            LOG.warn("Kafka Streams did not close within 30 s");
        }
        System.out.flush();
        System.exit(closed ? exitCode.get() : 1);
    }

    /** Flags override the environment, which overrides the defaults. Null means --help. */
    static Map<String, String> parse(String[] args, List<String> extra) {
        Map<String, String> values = new LinkedHashMap<>();
        for (String[] o : OPTIONS) {
            String env = System.getenv("STREAMS_PEER_" + o[0].toUpperCase(Locale.ROOT).replace('-', '_'));
            values.put(o[0], env != null && !env.isEmpty() ? env : o[1]);
        }
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (arg.equals("-h") || arg.equals("--help")) {
                return null;
            }
            if (!arg.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + arg);
            }
            String name = arg.substring(2);
            String value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else if (i + 1 < args.length) {
                value = args[++i];
            }
            if (value == null) {
                throw new IllegalArgumentException("--" + name + " needs a value");
            }
            if (name.equals("config")) {
                if (value.indexOf('=') <= 0) {
                    throw new IllegalArgumentException("--config takes KEY=VALUE, not " + value);
                }
                extra.add(value);
            } else if (values.containsKey(name)) {
                values.put(name, value);
            } else {
                throw new IllegalArgumentException("unknown flag --" + name);
            }
        }
        for (String n : List.of("threads", "stats-interval-s")) {
            try {
                Long.parseLong(values.get(n));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--" + n + " must be a number");
            }
        }
        return values;
    }

    /** The flags, with the defaults in effect (the environment's where set). */
    static String usage() {
        StringBuilder b = new StringBuilder("usage: switchyard-streams-peer [--flag value]...\n");
        for (String[] o : OPTIONS) {
            String env = "STREAMS_PEER_" + o[0].toUpperCase(Locale.ROOT).replace('-', '_');
            String value = System.getenv(env) != null && !System.getenv(env).isEmpty() ? System.getenv(env) : o[1];
            b.append(String.format(Locale.ROOT, "  --%-22s %s (now %s; env %s)%n", o[0], o[2],
                    value.isEmpty() ? "unset" : value, env));
        }
        b.append(String.format(Locale.ROOT, "  --%-22s %s%n", "config KEY=VALUE",
                "any other Streams/client property, e.g. producer.linger.ms=5 (repeatable)"));
        return b.toString();
    }
}
