# Switchyard: the two commands of the README, and the longer jobs that are not part of CI.

.PHONY: demo dev time-to-first-event test browser console-screenshots bench bench-quick chaos chaos-repeat outage takeover sms-ledger-window registry-writes helm-check image kafka-start kafka-stop clean fuzz

## demo: a local broker, the registry, the router, the seed plugins and a short load, ending with a summary
demo:
	scripts/demo

## dev: a local broker, registry, router and bridge for one plugin (PLUGIN_URL, default http://127.0.0.1:3000;
## ENV_FILE, the project's .env that plugin new wrote, so the registry signs with the secret the plugin has),
## which is registered and enabled for a sample team and sent sample events; prints each call's outcome until
## Ctrl-C (switchyardctl dev; docs/plugin-authors.md, "Quick start")
PLUGIN_URL ?= http://127.0.0.1:3000
ENV_FILE ?= .env
dev:
	cargo build --release --locked --bins
	target/release/switchyardctl dev --plugin-url $(PLUGIN_URL) --env-file $(ENV_FILE)

## time-to-first-event: per template language, the time from `plugin new` to the first event delivered
## through the dev loop (docs/plugin-authors.md; several minutes, mostly the Rust build)
time-to-first-event:
	scripts/time-to-first-event

## test: format and lint checks, then every test against a broker of its own
test:
	scripts/test

## browser: Chromium, ChromeDriver and axe-core for the web console's browser tests (apt-get and npm, once;
## make test runs it)
browser:
	scripts/browser

## console-screenshots: the web console's browser tests, writing their screenshots into docs/console/ (the
## pictures of docs/console.md)
console-screenshots:
	scripts/browser
	cargo build --workspace --bins --locked
	KAFKA_PORT=19792 scripts/kafka start
	SWITCHYARD_CONSOLE_SCREENSHOTS=docs SWITCHYARD_TEST_BOOTSTRAP=127.0.0.1:19792 cargo test --locked \
		-p switchyard-tests --test integration console::browser; status=$$?; KAFKA_PORT=19792 scripts/kafka stop; \
		exit $$status

## bench: every benchmark in one run on a broker of its own: router vs pipe vs Kafka Streams (interleaved),
## criterion, the plugin runtime; writes docs/benchmarks.md and target/bench/summary.json (about an hour)
bench:
	scripts/bench

## bench-quick: the same, short (minutes)
bench-quick:
	SWITCHYARD_BENCH_QUICK=1 scripts/bench

## chaos: the full chaos runs: on a three-node cluster (events fed at 4,000/s past 1M while routers are
## SIGKILLed and brokers crash, pause, restart node by node and are cut off the network, about 12 min), the
## plugin side on a cluster (200k events at 1,000/s on to the seed plugins' workers, which are SIGKILLed and
## rebalanced while their endpoints fail: every effect once), then on one broker (1M events, 20 router
## SIGKILLs, 2 broker restarts, a rebalance; then at-least-once); make test runs CI-sized ones
chaos:
	scripts/chaos

## chaos-repeat: the CI-sized single-node chaos run RUNS times (default 20, about 90 s each) on a broker of its
## own, seeds 11 (CI's), 12, ...; stops at the first failure, keeping its router logs (target/chaos/)
RUNS ?= 20
chaos-repeat:
	scripts/chaos --repeat $(RUNS)

## outage: a plugin endpoint down for two minutes under load; the neighbour's p99 (target/bench/outage.json)
outage:
	cargo build --workspace --bins --locked
	KAFKA_PORT=19592 scripts/kafka start
	SWITCHYARD_TEST_BOOTSTRAP=127.0.0.1:19592 cargo test --locked -p switchyard-tests --test integration \
		plugin_outage -- --ignored --nocapture; status=$$?; KAFKA_PORT=19592 scripts/kafka stop; exit $$status

## takeover: how soon a SIGKILLed and restarted router's partitions flow again, with dynamic and with static
## group membership (about a minute; docs/router.md)
takeover:
	cargo build --workspace --bins --locked
	KAFKA_PORT=19692 scripts/kafka start
	SWITCHYARD_TEST_BOOTSTRAP=127.0.0.1:19692 cargo test --locked -p switchyard-tests --test integration \
		takeover_times -- --ignored --nocapture; status=$$?; KAFKA_PORT=19692 scripts/kafka stop; exit $$status

## helm-check: lint, schema-validate and contract-test the Helm chart (offline; installs helm with Go once)
helm-check:
	scripts/helm-check

## image: the image of every binary from the Dockerfile, built with docker, podman or buildah (the first that
## works here; IMAGE_BUILDER=... to choose), named IMAGE (default switchyard:<version of Cargo.toml>); the image
## the Helm chart's image.repository names once pushed (helm/switchyard/README.md)
image:
	scripts/image

## fuzz: each cargo-fuzz target for FUZZ_SECONDS (default 600) in turn (nightly and cargo-fuzz; docs/fuzzing.md)
FUZZ_SECONDS ?= 600
fuzz:
	cd schemas/fuzz && for target in $$(cargo +nightly fuzz list); do \
		nice -n 19 cargo +nightly fuzz run $$target -- -jobs=1 -workers=1 -timeout=10 \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048; status=$$?; \
		grep -E '^#[0-9]+|^Done|ERROR' fuzz-0.log | tail -n 2; [ $$status -eq 0 ] || exit $$status; \
	done

kafka-start:
	scripts/kafka start

kafka-stop:
	scripts/kafka stop

clean:
	cargo clean

## registry-writes: what the registry's compare-and-set costs a store write, against a plain write, on a
## local broker (docs/benchmarks.md, "Registry writes")
registry-writes:
	cargo build --workspace --bins --locked
	KAFKA_PORT=19692 scripts/kafka start
	SWITCHYARD_TEST_BOOTSTRAP=127.0.0.1:19692 cargo test --locked -p switchyard-tests --test integration \
		registry_writes -- --ignored --nocapture; status=$$?; KAFKA_PORT=19692 scripts/kafka stop; exit $$status

## sms-ledger-window: what the sms ledger's two acks=all writes per text cost (the intent before the send,
## the outcome after it), on one broker and on a three-node cluster (docs/reliability.md)
sms-ledger-window:
	cargo build --workspace --bins --locked
	KAFKA_PORT=19692 scripts/kafka start
	SWITCHYARD_TEST_BOOTSTRAP=127.0.0.1:19692 cargo test --locked -p switchyard-tests --test integration \
		sms_ledger_window -- --ignored --nocapture; status=$$?; KAFKA_PORT=19692 scripts/kafka stop; exit $$status
	KAFKA_NODES=3 KAFKA_PORT=19900 SWITCHYARD_KAFKA_DIR=$(CURDIR)/target/kafka/ledger-cluster scripts/kafka start
	SWITCHYARD_TEST_BOOTSTRAP=127.0.0.1:19900,127.0.0.1:19902,127.0.0.1:19904 cargo test --locked -p switchyard-tests \
		--test integration sms_ledger_window -- --ignored --nocapture; status=$$?; \
		KAFKA_NODES=3 KAFKA_PORT=19900 SWITCHYARD_KAFKA_DIR=$(CURDIR)/target/kafka/ledger-cluster scripts/kafka stop; exit $$status
