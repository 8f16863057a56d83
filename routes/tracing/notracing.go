//go:build notracing

package tracing

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams"
)

// errNotBuilt is the start-up error of a tracing block in a binary built
// without tracing: refusing beats running without the spans it asked for.
var errNotBuilt = errors.New("cannot start tracing: this binary was built without tracing (-tags notracing); " +
	"remove tracing.otlp_endpoint or use a binary built without the tag")

// Tracer is never made in this build: it is always nil, tracing off.
type Tracer struct{}

// New returns nil when tracing is off, and an error when cfg turns it on.
func New(cfg config.Tracing, _ *slog.Logger) (*Tracer, error) {
	if cfg.Enabled() {
		return nil, errNotBuilt
	}
	return nil, nil
}

// Shutdown does nothing.
func (*Tracer) Shutdown(context.Context) error { return nil }

// Request is never made in this build: it is always nil.
type Request struct{}

// StartRequest returns nil: no span.
func (*Tracer) StartRequest(*fasthttp.RequestHeader, string, time.Time) *Request { return nil }

// Model does nothing.
func (*Request) Model(string, string) {}

// Decision does nothing.
func (*Request) Decision(time.Time, string, int64, error) {}

// Tracer returns nil: the upstream chain opens no attempt spans.
func (*Request) Tracer() upstreams.Tracer { return nil }

// End does nothing.
func (*Request) End(End) {}
