package routes

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/upstreams"
)

func TestErrorBodyShape(t *testing.T) {
	f := func(e *APIError, wantType string, wantParam, wantCode any) {
		t.Helper()
		var v map[string]map[string]any
		if err := json.Unmarshal(errorBody(e), &v); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		in := v["error"]
		if in["message"] != e.Message || in["type"] != wantType || in["param"] != wantParam || in["code"] != wantCode {
			t.Fatalf("error body %v", in)
		}
		if len(in) != 4 {
			t.Fatalf("error body has %d fields, want message, type, param, code", len(in))
		}
	}
	f(errorf(400, "invalid_json", "bad %s", "json"), "invalid_request_error", nil, "invalid_json")
	f(errorf(401, "invalid_api_key", "who"), "authentication_error", nil, "invalid_api_key")
	f(errorf(503, "store_unavailable", "down"), "api_error", nil, "store_unavailable")
	f(&APIError{Status: 400, Type: "invalid_request_error", Param: "model", Message: "m"}, "invalid_request_error", "model", nil)
}

func TestTenantFor(t *testing.T) {
	keys := authKeys(config.Auth{Keys: []config.ClientKey{
		{Tenant: "a", Key: "sk-a"},
		// sha256("sk-b")
		{Tenant: "b", SHA256: "18519d64d0d18b0e84e43301547425933dc0394576666e8da1ef1790fb64ca9f"},
	}})
	f := func(header, wantTenant string, wantOK bool) {
		t.Helper()
		var ctx fasthttp.RequestCtx
		if header != "" {
			ctx.Request.Header.Set("Authorization", header)
		}
		tenant, ok := "", false
		if k := keyFor(&ctx, keys); k != nil {
			tenant, ok = k.tenant, true
		}
		if tenant != wantTenant || ok != wantOK {
			t.Fatalf("keyFor(%q) = %q, %v; want %q, %v", header, tenant, ok, wantTenant, wantOK)
		}
	}
	f("Bearer sk-a", "a", true)
	f("bearer sk-a", "a", true)
	f("Bearer sk-a ", "a", true)
	f("Bearer sk-b", "b", true)
	f("Bearer sk-b-wrong", "", false)
	f("Basic sk-a", "", false)
	f("", "", false)
	f("Bearer ", "", false)
}

func TestRetryHeaders(t *testing.T) {
	h := retryHeaders(250)
	if h["Retry-After"] != "1" || h["retry-after-ms"] != "250" || h["x-should-retry"] != "true" {
		t.Fatalf("retry headers %v", h)
	}
}

// The log line shows each error text once (issue 9): a message that
// already quotes its cause does not repeat it.
func TestAPIErrorText(t *testing.T) {
	f := func(e *APIError, want string) {
		t.Helper()
		if got := e.Error(); got != want {
			t.Fatalf("Error() = %q, want %q", got, want)
		}
	}
	cause := &upstreams.Error{Provider: "p", Err: errors.New("dial tcp: connection refused"), Connect: true}
	f(chainError(cause, 2), `502 upstream_failed: all 2 upstream attempts failed; last: provider "p": dial tcp: connection refused`)
	f(chainError(&upstreams.Error{Provider: "p", Status: 503, Err: errors.New("overloaded")}, 1),
		`503 upstream_failed: all 1 upstream attempts failed; last: provider "p" answered 503: overloaded`)
	f(&APIError{Status: 503, Code: "store_unavailable", Message: "cannot read the task", Cause: errors.New("pg down")},
		"503 store_unavailable: cannot read the task: pg down")
	f(errorf(400, "invalid_json", "bad"), "400 invalid_json: bad")
}
