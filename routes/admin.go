package routes

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/upstreams/breaker"
)

// adminUpstreams serves GET /admin/upstreams: every target's breaker
// (DESIGN.md section 7) as the cluster shares it, read from Redis when it
// answers, else this node's own view ("shared": false).
func (s *Server) adminUpstreams(ctx *fasthttp.RequestCtx, c *call) error {
	if !isAdmin(ctx, c.st.Config.Auth.AdminKey) {
		return errorf(401, "invalid_api_key", "the admin API needs Authorization: Bearer <admin_key>")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := struct {
		Targets []breaker.TargetState `json:"targets"`
	}{c.st.Registry.Breaker().Snapshot(sctx)}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

// adminTaskKey returns the key of /admin/tasks/{key}, percent-decoded
// once. ctx.Path() is already decoded, with "//" and ".." folded:
// decoding it again refused a key such as "50%off" (sent as 50%25off),
// and folding changes a key such as "a//b". So the key is read from the
// path as sent when that starts with the prefix, and from the normalised
// path only when the prefix itself was spelt oddly (/%61dmin/...).
func adminTaskKey(ctx *fasthttp.RequestCtx) string {
	if rest, ok := strings.CutPrefix(string(ctx.URI().PathOriginal()), adminTasksPrefix); ok {
		if key, err := url.PathUnescape(rest); err == nil && key != "" {
			return key
		}
	}
	return string(ctx.Path()[len(adminTasksPrefix):])
}

// adminTask serves GET /admin/tasks/{key}?tenant=T: the task and its
// attempt log (DESIGN.md section 5). Bodies only with ?body=1.
func (s *Server) adminTask(ctx *fasthttp.RequestCtx, c *call) error {
	if !isAdmin(ctx, c.st.Config.Auth.AdminKey) {
		return errorf(401, "invalid_api_key", "the admin API needs Authorization: Bearer <admin_key>")
	}
	if s.coord == nil {
		return errorf(404, "not_found", "deduplication is disabled on this gateway")
	}
	key := adminTaskKey(ctx)
	tenant := string(ctx.QueryArgs().Peek("tenant"))
	if tenant == "" {
		if !c.st.Config.Auth.Open() {
			return &APIError{Status: 400, Type: "invalid_request_error", Code: "missing_tenant", Param: "tenant", Message: "?tenant= is required"}
		}
		tenant = "default"
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	task, attempts, err := s.coord.Store().Get(sctx, tenant, dedupe.HashKey(tenant, key))
	if errors.Is(err, dedupe.ErrNotFound) {
		return errorf(404, "task_not_found", "no task for this key and tenant")
	}
	if err != nil {
		return &APIError{Status: 503, Type: "api_error", Code: "store_unavailable", Message: "cannot read the task", Cause: err}
	}
	type response struct {
		Status      int    `json:"status"`
		ContentType string `json:"content_type"`
		Body        string `json:"body"`
	}
	out := struct {
		Tenant      string           `json:"tenant"`
		KeyHash     string           `json:"key_hash"`
		Status      dedupe.Status    `json:"status"`
		Fence       int64            `json:"fence"`
		Model       string           `json:"model"`
		CreatedAt   string           `json:"created_at"`
		UpdatedAt   string           `json:"updated_at"`
		ExpiresAt   string           `json:"expires_at,omitempty"`
		LeaseUntil  string           `json:"lease_until,omitempty"`
		Stream      bool             `json:"stream"`
		TooLarge    bool             `json:"too_large"`
		Error       string           `json:"error,omitempty"`
		Usage       dedupe.Usage     `json:"usage"`
		Attempts    []dedupe.Attempt `json:"attempts"`
		Response    *response        `json:"response,omitempty"`
		Fingerprint string           `json:"fingerprint"`
	}{
		Tenant: task.Tenant, KeyHash: task.KeyHash, Status: task.Status, Fence: task.Fence, Model: task.Model,
		CreatedAt: rfc3339(task.CreatedAt), UpdatedAt: rfc3339(task.UpdatedAt), ExpiresAt: rfc3339(task.ExpiresAt),
		Stream: task.Stream, TooLarge: task.TooLarge, Error: task.Error, Usage: task.Usage,
		Attempts: attempts, Fingerprint: task.Fingerprint,
	}
	if task.Status == dedupe.StatusProcessing {
		out.LeaseUntil = rfc3339(task.LeaseUntil)
	}
	if out.Attempts == nil {
		out.Attempts = []dedupe.Attempt{}
	}
	if string(ctx.QueryArgs().Peek("body")) == "1" && task.Response != nil {
		out.Response = &response{Status: task.Response.Status, ContentType: task.Response.ContentType, Body: string(task.Response.Body)}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
