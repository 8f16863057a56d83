# The two commands of the README: `make run` and `make test`.
GO ?= go

.PHONY: run test vet build demo bench bench-short chaos

# One shell line that execs the binary: the gateway is then make's direct
# child, not behind go run, so a SIGHUP sent to its pid (logged at start-up)
# reloads the config.
run:
	$(GO) build -o bin/gateway ./gateway && exec ./bin/gateway serve -config gateway.yaml

# Tests need PostgreSQL and Redis: testenv.sh uses GATEWAY_TEST_DATABASE_URL
# and GATEWAY_TEST_REDIS_URL when set, else starts throwaway servers.
test:
	$(GO) vet ./...
	$(GO) vet -tags notracing ./...
	$(GO) test -count=1 -tags notracing ./routes/tracing/
	bash deploy/testenv.sh $(GO) test -race -count=1 -timeout 20m ./...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/gateway ./gateway

demo:
	bash deploy/demo.sh

# The README's performance table, measured against a bare proxy in one run
# (about 8 minutes with the soak; BENCH_* knobs in deploy/bench/run.sh).
bench:
	bash deploy/bench/run.sh

# A two-minute smoke run of the same suite; README.md is left alone.
bench-short:
	BENCH_SHORT=1 bash deploy/bench/run.sh

# The chaos run (README "Guarantees"): three gateway processes on their own
# Postgres and Redis, killed and restarted under load, then the invariant
# checker; one summary line, non-zero exit on any violation. Six minutes
# of faults by default (more than 100 of them); CI runs CHAOS_DURATION=100s.
CHAOS_DURATION ?= 6m
chaos:
	$(GO) build -o bin/gateway ./gateway
	$(GO) run ./deploy/chaos -gateway bin/gateway -duration $(CHAOS_DURATION)
