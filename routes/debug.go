package routes

import (
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// debugPrefix starts the paths of Go's runtime profiles (debug.pprof).
const debugPrefix = "/debug/pprof/"

// pprof serves /debug/pprof/ when debug.pprof is on. Profiles reveal the
// code and the memory of the process (a heap dump can hold request data),
// so they go only to the admin key or, without one, to loopback clients.
// It is not metered: a 30-second CPU profile is not a request to count.
func (s *Server) pprof(ctx *fasthttp.RequestCtx, c *call) {
	if !debugAllowed(ctx, c.st.Config.Auth.AdminKey) {
		writeError(ctx, errorf(401, "invalid_api_key", "/debug/pprof/ needs Authorization: Bearer <admin_key>"))
		return
	}
	pprofhandler.PprofHandler(ctx)
}

// debugAllowed: the admin key when one is configured, else a loopback peer.
func debugAllowed(ctx *fasthttp.RequestCtx, adminKey string) bool {
	if adminKey != "" {
		return isAdmin(ctx, adminKey)
	}
	return ctx.RemoteIP().IsLoopback()
}
