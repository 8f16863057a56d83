// Package routes holds the HTTP handlers of the OpenAI and Anthropic
// APIs: auth, request parsing, the idempotency decision and the relay of
// upstream answers.
package routes

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/upstreams"
	"github.com/idemgw/gateway/upstreams/dialect"
)

// APIError is an error a handler returns to be written as OpenAI's error
// JSON ({"error":{"message","type","param","code"}}) with Status.
type APIError struct {
	Status  int
	Type    string
	Code    string
	Param   string
	Message string
	// Headers are extra response headers (Retry-After and the like).
	Headers map[string]string
	// Cause is logged, never shown to the client.
	Cause error
}

// Error is the text the request log shows: status, code, message and the
// cause, each text once.
func (e *APIError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
	// A message that already quotes its cause (chainError's "last: ...")
	// would otherwise put the same text twice on the log line.
	if e.Cause != nil && !strings.Contains(e.Message, e.Cause.Error()) {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *APIError) Unwrap() error { return e.Cause }

// errorf builds an APIError; the type follows from the status as in
// OpenAI's API.
func errorf(status int, code, format string, args ...any) *APIError {
	t := "invalid_request_error"
	switch {
	case status == fasthttp.StatusUnauthorized:
		t = "authentication_error"
	case status >= 500:
		t = "api_error"
	}
	return &APIError{Status: status, Type: t, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errorBody renders OpenAI's error shape.
func errorBody(e *APIError) []byte {
	type inner struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	in := inner{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		in.Param = &e.Param
	}
	if e.Code != "" {
		in.Code = &e.Code
	}
	b, _ := json.Marshal(struct {
		Error inner `json:"error"`
	}{in})
	return b
}

// anthropicErrorBody renders Anthropic's error shape,
// {"type":"error","error":{"type","message"}}, for the Messages API paths
// (DESIGN.md section 5): the type follows from the status as in
// Anthropic's API, which is what its SDKs map to their error classes.
func anthropicErrorBody(e *APIError) []byte {
	return dialect.AnthropicError(e.Status, "", e.Message)
}

// writeError writes e as the whole response, in the dialect of the
// request's path.
func writeError(ctx *fasthttp.RequestCtx, e *APIError) {
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("application/json")
	for k, v := range e.Headers {
		ctx.Response.Header.Set(k, v)
	}
	if upstreams.DialectOf(string(ctx.Path())) == upstreams.DialectAnthropic {
		ctx.SetBody(anthropicErrorBody(e))
		return
	}
	ctx.SetBody(errorBody(e))
}

// retryHeaders tell OpenAI SDKs to back off and retry on their own
// (they read x-should-retry, then retry-after-ms, then Retry-After).
func retryHeaders(after int) map[string]string {
	return map[string]string{
		"Retry-After":    strconv.Itoa(max(1, after/1000)),
		"retry-after-ms": strconv.Itoa(after),
		"x-should-retry": "true",
	}
}

// TransportError is the fasthttp.Server ErrorHandler: errors fasthttp
// meets before a handler runs (an oversize body, a malformed request)
// still get the error shape of their path's dialect.
func TransportError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, errorf(413, "request_too_large", "request body is over the gateway's max_body_bytes"))
	case errors.As(err, &small):
		// The headers do not fit fasthttp's read buffer (RFC 6585 section 5).
		writeError(ctx, errorf(431, "request_header_fields_too_large", "the request line and headers are too large"))
	case errors.As(err, &netErr) && netErr.Timeout():
		// read_header_timeout or read_timeout ran out (RFC 9110 section 15.5.9).
		writeError(ctx, errorf(408, "request_timeout", "the request was not received in time"))
	default:
		writeError(ctx, errorf(400, "bad_request", "cannot read the request: %v", err))
	}
}
