# Switchyard: the two commands of the README, and the longer jobs that are not part of CI.

.PHONY: demo test bench helm-check kafka-start kafka-stop clean

## demo: a local broker, the registry, the router, the seed plugins and a short load, ending with a summary
demo:
	scripts/demo

## test: format and lint checks, then every test against a broker of its own
test:
	scripts/test

## bench: the route-lookup and payload-validation criterion benchmarks (minutes; not part of CI)
bench:
	cargo bench --locked -p switchyard-router --bench route_lookup
	cargo bench --locked -p switchyard-schemas --bench payload

## helm-check: lint, schema-validate and contract-test the Helm chart (offline; installs helm with Go once)
helm-check:
	scripts/helm-check

kafka-start:
	scripts/kafka start

kafka-stop:
	scripts/kafka stop

clean:
	cargo clean
