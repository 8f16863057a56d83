package routes

import (
	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
)

// scrubBody removes the config's secrets from an error answer before it
// leaves (DESIGN.md section 8): an upstream 4xx passed through may quote
// the provider key it was sent, and the gateway's own messages quote
// client-chosen text such as a path.
func scrubBody(ctx *fasthttp.RequestCtx, s *config.Scrubber) {
	if clean, changed := s.Bytes(ctx.Response.Body()); changed {
		ctx.Response.SetBody(clean)
	}
}
