# The two commands of the README: `make run` and `make test`.
GO ?= go

.PHONY: run test vet build demo bench

run:
	$(GO) run ./gateway serve -config gateway.yaml

# Tests need PostgreSQL and Redis: testenv.sh uses GATEWAY_TEST_DATABASE_URL
# and GATEWAY_TEST_REDIS_URL when set, else starts throwaway servers.
test:
	$(GO) vet ./...
	bash deploy/testenv.sh $(GO) test -race -count=1 -timeout 20m ./...

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/gateway ./gateway

demo:
	bash deploy/demo.sh

bench:
	bash deploy/bench/run.sh
