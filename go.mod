module github.com/idemgw/gateway

go 1.26.8

// Direct dependencies: the five named in STYLE.md, plus one embedded store,
// the OpenTelemetry SDK, and modules that only tests import.
require (
	github.com/VictoriaMetrics/metrics v1.45.0
	// Test only: gateway/deploy_test.go parses the dashboard's and the alert
	// rules' PromQL to check every metric they name is exported.
	github.com/VictoriaMetrics/metricsql v0.87.3
	// Test only: gateway/anthropic_sdk_test.go drives /v1/messages with the
	// official Anthropic Go SDK, unmodified, as Claude Code and agents do
	// (issue 12): its SSE decoder and error types are what must accept the
	// gateway's answers.
	github.com/anthropics/anthropic-sdk-go/v2 v2.17.0
	// Test only: gateway/ledgerpage_browser_test.go drives headless
	// Chromium over the DevTools protocol to test the ledger page in a
	// real browser (issue 16).
	github.com/chromedp/chromedp v0.23.1
	github.com/jackc/pgx/v5 v5.12.0
	// Test only: gateway/sdk_test.go and gateway/streams_test.go drive the
	// gateway with the official OpenAI Go SDK, as a client would.
	github.com/openai/openai-go/v3 v3.98.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/valyala/fasthttp v1.78.0
	// The embedded store (store.kind: embedded, dedupe/embedded.go): a
	// pure-Go single-file database, so one node runs without Postgres or cgo.
	go.etcd.io/bbolt v1.5.0
	// Tracing (routes/tracing, issue 16): the official OpenTelemetry SDK
	// and its OTLP/HTTP exporter. Batching, sampling, W3C Trace Context and
	// the OTLP protobuf encoding are what a collector expects; writing
	// them by hand would be a protocol implementation of our own.
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp v1.47.0
	go.opentelemetry.io/otel/sdk v1.47.0
	go.opentelemetry.io/otel/trace v1.47.0
	// Test only: gateway/tracing_test.go decodes the exported spans with
	// the collector's protobuf types (they come with the exporter).
	go.opentelemetry.io/proto/otlp v1.11.0
	google.golang.org/protobuf v1.36.12
	gopkg.in/yaml.v3 v3.0.1
)

// Indirect: what the modules above need; go mod tidy maintains this block.
require (
	github.com/bahlo/generic-list-go v0.2.0 // indirect
	github.com/buger/jsonparser v1.1.2 // indirect
	github.com/cenkalti/backoff/v5 v5.0.3 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	github.com/go-logr/logr v1.4.4 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/grpc-ecosystem/grpc-gateway/v2 v2.30.0 // indirect
	github.com/invopop/jsonschema v0.14.0 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/puddle/v2 v2.2.3 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/kr/text v0.2.0 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/pb33f/ordered-map/v2 v2.3.1 // indirect
	github.com/rogpeppe/go-internal v1.16.0 // indirect
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1 // indirect
	github.com/tidwall/gjson v1.20.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fastrand v1.1.0 // indirect
	github.com/valyala/histogram v1.2.0 // indirect
	go.opentelemetry.io/auto/sdk v1.2.1 // indirect
	go.opentelemetry.io/otel/exporters/otlp/otlptrace v1.47.0 // indirect
	go.opentelemetry.io/otel/log v1.47.0 // indirect
	go.opentelemetry.io/otel/metric v1.47.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.2 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20260928230214-8a89bd6388cc // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260928230214-8a89bd6388cc // indirect
	google.golang.org/grpc v1.83.2 // indirect
)

require (
	github.com/chromedp/cdproto v0.160.1 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
)
