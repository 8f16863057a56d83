package routes

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestDebugAllowed(t *testing.T) {
	f := func(remote, auth, adminKey string, want bool) {
		t.Helper()
		var req fasthttp.Request
		req.SetRequestURI("/debug/pprof/heap")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP(remote), Port: 4000}, nil)
		if got := debugAllowed(&ctx, adminKey); got != want {
			t.Fatalf("debugAllowed(remote %s, auth %q, admin key %q) = %t, want %t", remote, auth, adminKey, got, want)
		}
	}
	// Without an admin key: loopback peers only.
	f("127.0.0.1", "", "", true)
	f("::1", "", "", true)
	f("10.1.2.3", "", "", false)
	f("10.1.2.3", "Bearer anything", "", false)
	// With one: the key, wherever the request comes from.
	f("127.0.0.1", "", "adm", false)
	f("127.0.0.1", "Bearer wrong", "adm", false)
	f("127.0.0.1", "Bearer adm", "adm", true)
	f("10.1.2.3", "Bearer adm", "adm", true)
}
