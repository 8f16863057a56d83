package routes

import (
	"encoding/json"

	"github.com/valyala/fasthttp"
)

// models lists the configured route models in OpenAI's list shape.
func (s *Server) models(ctx *fasthttp.RequestCtx, c *call) error {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, m := range c.st.Registry.Models() {
		list.Data = append(list.Data, model{ID: m, Object: "model", OwnedBy: "gateway"})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}
