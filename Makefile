# Switchyard: the two commands of the README, and the longer jobs that are not part of CI.

.PHONY: demo test bench kafka-start kafka-stop clean

## demo: a local broker, the router, sample plugins and a short load, ending with a summary
demo:
	scripts/demo

## test: format and lint checks, then every test against a broker of its own
test:
	scripts/test

## bench: the route-lookup and payload-validation criterion benchmarks (minutes; not part of CI)
bench:
	cargo bench --locked -p switchyard-router --bench route_lookup
	cargo bench --locked -p switchyard-schemas --bench payload

kafka-start:
	scripts/kafka start

kafka-stop:
	scripts/kafka stop

clean:
	cargo clean
