//go:build notracing

package tracing

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/idemgw/gateway/config"
)

// A binary built without tracing refuses a tracing block at start-up,
// naming the tag, and is tracing off without one.
func TestNotracingRefusesTracingBlock(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tr, err := New(configFor("http://127.0.0.1:4318"), log)
	if tr != nil || err == nil || !strings.Contains(err.Error(), "this binary was built without tracing (-tags notracing)") {
		t.Fatalf("New with an endpoint = %v, %v; want nil and the notracing error", tr, err)
	}
	if tr, err := New(config.Tracing{SampleRatio: 1}, log); tr != nil || err != nil {
		t.Fatalf("New without an endpoint = %v, %v; want nil, nil", tr, err)
	}
}
