package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// The hostile-input catalogue of issue 13 (DESIGN.md section 8): every
// case is sent to an in-process gateway over real loopback HTTP (raw TCP
// where the Go client refuses to send the bytes) and must get its
// expected status and error code, never a 5xx of the gateway's own, a
// hang or unbounded memory, and leave the node healthy: a normal request
// succeeds and /readyz answers 200 after each case, and goroutines and
// heap are back near where they started after the whole catalogue.
// TestBadInputs (core_test.go) holds the everyday mistakes; this file
// holds what an attacker or a broken client sends.

// hostileResult is what a client saw: status 0 means the connection was
// closed without an answer.
type hostileResult struct {
	status int
	header http.Header
	body   []byte
}

// hostileCase is one entry of the catalogue. code is the OpenAI error
// code the body must carry ("" for any code; ignored for 2xx and for
// closed connections); check, when set, inspects the answer further.
type hostileCase struct {
	name   string
	do     func(t *testing.T) hostileResult
	status int
	code   string
	check  func(t *testing.T, r hostileResult)
}

// hostileConfig: a small body cap so that oversize is cheap to send,
// short read timeouts so that slow clients are cut quickly, the fake
// upstream for normal answers and a hostile upstream (hostileUpstream)
// for broken ones, with a short attempt timeout.
func hostileConfig(t *testing.T, fakeURL, hostileURL string) string {
	providers := defaultProviders +
		"  bad: {base_url: " + fmt.Sprintf("%q", hostileURL) + ", api_key: upstream-secret-key, timeout: 2s, first_byte_timeout: 1s}\n" +
		// 65 MiB take a while on a loaded machine under -race.
		"  bad-big: {base_url: " + fmt.Sprintf("%q", hostileURL) + ", api_key: upstream-secret-key, timeout: 60s}\n"
	return providerConfig(t, fakeURL, providers, `max_body_bytes: 262144
read_header_timeout: 500ms
read_timeout: 1s
write_timeout: 1s
routes:
  - model: m
    targets: [{provider: fake}]
  - model: m-big
    targets: [{provider: fake}]
  - model: huge-body
    targets: [{provider: bad-big}]
  - model: garbage-sse
    targets: [{provider: bad}]
  - model: huge-event
    targets: [{provider: bad}]
  - model: endless-sse
    targets: [{provider: bad}]
  - model: endless-body
    targets: [{provider: bad}]
`)
}

func TestHostileInput(t *testing.T) {
	fake := startFake(t)
	bad := startHostileUpstream(t)
	g := startGateway(t, hostileConfig(t, fake.URL, bad))
	addr := strings.TrimPrefix(g.URL, "http://")
	chat := "/v1/chat/completions"
	auth := "Authorization: Bearer " + testClientKey
	okBody := chatBody("m", "hi", false)

	// Warm up every code path once, so that the baseline counts the
	// goroutines and heap of a gateway that has served.
	healthy(t, g.URL, "warm-up")
	post(t, g.URL, chat, chatBody("m", "warm-up stream", true))
	base := settledGoroutines(0)
	baseHeap := heapInUse()

	postJSON := func(body string, headers ...string) func(t *testing.T) hostileResult {
		return func(t *testing.T) hostileResult {
			resp, b := post(t, g.URL, chat, body, headers...)
			return hostileResult{resp.StatusCode, resp.Header, b}
		}
	}
	// raw sends a request as bytes; the request line and headers are
	// given without the final blank line.
	raw := func(head, body string) func(t *testing.T) hostileResult {
		return func(t *testing.T) hostileResult {
			return rawExchange(t, addr, head+"\r\n\r\n"+body, false)
		}
	}
	rawPost := func(extraHeaders, body string) func(t *testing.T) hostileResult {
		return raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close%s", chat, auth, len(body), extraHeaders), body)
	}
	// postAs sends a chat body with the given auth header lines only.
	postAs := func(authLines, body string) func(t *testing.T) hostileResult {
		return raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close", chat, authLines, len(body)), body)
	}
	get := func(path string, key string) func(t *testing.T) hostileResult {
		return func(t *testing.T) hostileResult {
			h := ""
			if key != "" {
				h = "\r\nAuthorization: Bearer " + key
			}
			return rawExchange(t, addr, "GET "+path+" HTTP/1.1\r\nHost: gw\r\nConnection: close"+h+"\r\n\r\n", false)
		}
	}
	deep := strings.Repeat("[", 100000)
	cases := []hostileCase{
		// Bodies.
		{name: "malformed JSON", do: postJSON(`{"model":"m","messages":[{"role":"user","content":"x"}`), status: 400, code: "invalid_json"},
		{name: "body is an array", do: postJSON(`[{"model":"m"}]`), status: 400, code: "invalid_json"},
		{name: "body is a string", do: postJSON(`"model"`), status: 400, code: "invalid_json"},
		{name: "body is null", do: postJSON(`null`), status: 400, code: "invalid_json"},
		{name: "empty body", do: postJSON(``), status: 400, code: "invalid_json"},
		{name: "100k unclosed [", do: postJSON(`{"model":"m","messages":` + deep), status: 400, code: "invalid_json"},
		{name: "100k nested arrays", do: postJSON(`{"model":"m","messages":` + deep + strings.Repeat("]", 100000) + `}`), status: 400, code: "invalid_json"},
		{name: "100k nested objects in a key's value", do: postJSON(`{"model":"m","x":` + strings.Repeat(`{"a":`, 10001) + `1` + strings.Repeat("}", 10001) + `}`), status: 400, code: "invalid_json"},
		{name: "body over max_body_bytes", do: postJSON(chatBody("m", strings.Repeat("x", 300000), false)), status: 413, code: "request_too_large"},
		{name: "Content-Length far over the cap", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: 99999999999\r\nConnection: close", chat, auth), ""), status: 413, code: "request_too_large"},
		{name: "chunked body over the cap", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close", chat, auth),
			strings.Repeat(fmt.Sprintf("%x\r\n%s\r\n", 8192, strings.Repeat("x", 8192)), 40)+"0\r\n\r\n"), status: 413, code: "request_too_large"},
		{name: "invalid UTF-8 in a message", do: postJSON("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\xc3\"}]}"), status: 200},
		{name: "invalid UTF-8 in the model", do: postJSON("{\"model\":\"m\xff\",\"messages\":[]}"), status: 404, code: "model_not_found"},
		{name: "raw NUL in a string", do: postJSON("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\x00b\"}]}"), status: 400, code: "invalid_json"},
		{name: "NUL byte between members", do: postJSON("{\"model\":\"m\",\x00\"messages\":[]}"), status: 400, code: "invalid_json"},
		{name: "escaped NUL in a message", do: postJSON(`{"model":"m","messages":[{"role":"user","content":"a\u0000b"}]}`), status: 200},
		{name: "escaped NUL in the model", do: postJSON(`{"model":"m\u0000","messages":[]}`), status: 404, code: "model_not_found"},

		{name: "body is a number", do: postJSON(`123`), status: 400, code: "invalid_json"},
		{name: "body is true", do: postJSON(`true`), status: 400, code: "invalid_json"},
		{name: "whitespace-only body", do: postJSON(" \r\n\t "), status: 400, code: "invalid_json"},
		{name: "two JSON values", do: postJSON(okBody + okBody), status: 400, code: "invalid_json"},
		{name: "garbage after the object", do: postJSON(okBody + "x"), status: 400, code: "invalid_json"},
		{name: "UTF-8 BOM before the object", do: postJSON("\xef\xbb\xbf" + okBody), status: 400, code: "invalid_json"},
		{name: "lone surrogate escape in the model", do: postJSON(`{"model":"\ud800","messages":[]}`), status: 404, code: "model_not_found"},
		{name: "lone surrogate escape in a message", do: postJSON(`{"model":"m","messages":[{"role":"user","content":"\udc00x\ud800"}]}`), status: 200},
		{name: "invalid escape in a message", do: postJSON(`{"model":"m","messages":[{"role":"user","content":"\x41"}]}`), status: 400, code: "invalid_json"},
		{name: "duplicate member in a nested object", do: postJSON(`{"model":"m","messages":[{"role":"user","role":"system","content":"x"}]}`), status: 400, code: "invalid_json"},
		{name: "number with a 30-digit exponent", do: postJSON(`{"model":"m","messages":[],"temperature":1e999999999999999999999999999999}`), status: 200},
		{name: "number of 100000 digits", do: postJSON(`{"model":"m","messages":[],"seed":` + strings.Repeat("9", 100000) + `}`), status: 200},
		{name: "12000 members in one object", do: postJSON(`{"model":"m","messages":[],"x":{` + manyMembers(12000) + `}}`), status: 200},
		{name: "a refused body does not take its key", do: func(t *testing.T) hostileResult {
			if resp, b := post(t, g.URL, chat, `{"model":"m",`, "Idempotency-Key", "hostile-refused-1"); resp.StatusCode != 400 {
				t.Fatalf("malformed body: %d %s", resp.StatusCode, b)
			}
			return postJSON(okBody, "Idempotency-Key", "hostile-refused-1")(t)
		}, status: 200},

		// Wrong types and extremes: the gateway reads only model and
		// stream; the rest is the upstream's to judge.
		{name: "model is a number", do: postJSON(`{"model":1e999,"messages":[]}`), status: 400, code: "invalid_model"},
		{name: "model is null", do: postJSON(`{"model":null,"messages":[]}`), status: 400, code: "invalid_model"},
		{name: "model is an object", do: postJSON(`{"model":{"name":"m"},"messages":[]}`), status: 400, code: "invalid_model"},
		{name: "model is a list", do: postJSON(`{"model":["m"],"messages":[]}`), status: 400, code: "invalid_model"},
		{name: "model is empty", do: postJSON(`{"model":"","messages":[]}`), status: 400, code: "invalid_model"},
		{name: "model of 200000 characters", do: postJSON(`{"model":"` + strings.Repeat("m", 200000) + `"}`), status: 404, code: "model_not_found"},
		{name: "stream is a string", do: postJSON(`{"model":"m","messages":[],"stream":"true"}`), status: 400, code: "invalid_type"},
		{name: "stream is a number", do: postJSON(`{"model":"m","messages":[],"stream":1}`), status: 400, code: "invalid_type"},
		{name: "stream is an object", do: postJSON(`{"model":"m","messages":[],"stream":{}}`), status: 400, code: "invalid_type"},
		{name: "stream is null", do: postJSON(`{"model":"m","messages":[],"stream":null}`), status: 200},
		{name: "stream twice", do: postJSON(`{"model":"m","messages":[],"stream":false,"stream":true}`), status: 400, code: "invalid_json"},
		{name: "messages is a string", do: postJSON(`{"model":"m","messages":"hi"}`), status: 200},
		{name: "messages is a number", do: postJSON(`{"model":"m","messages":-1}`), status: 200},
		{name: "numeric extremes", do: postJSON(`{"model":"m","messages":[],"max_tokens":1e400,"temperature":-1e-400,"n":123456789012345678901234567890,"top_p":-0}`), status: 200},

		// Idempotency-Keys.
		{name: "Idempotency-Key of 1000 characters", do: postJSON(okBody, "Idempotency-Key", strings.Repeat("k", 1000)), status: 400, code: "idempotency_key_invalid"},
		{name: "Idempotency-Key of 5000 characters", do: postJSON(okBody, "Idempotency-Key", strings.Repeat("k", 5000)), status: 431, code: "request_header_fields_too_large"},
		{name: "empty Idempotency-Key", do: rawPost("\r\nIdempotency-Key:", okBody), status: 400, code: "idempotency_key_invalid"},
		{name: "blank Idempotency-Key", do: rawPost("\r\nIdempotency-Key:    ", okBody), status: 400, code: "idempotency_key_invalid"},
		{name: "empty quoted Idempotency-Key", do: postJSON(okBody, "Idempotency-Key", `""`), status: 400, code: "idempotency_key_invalid"},
		{name: "two Idempotency-Keys", do: rawPost("\r\nIdempotency-Key: a\r\nIdempotency-Key: b", okBody), status: 400, code: "idempotency_key_invalid"},
		{name: "Idempotency-Key with DEL", do: rawPost("\r\nIdempotency-Key: ab\x7fcd", okBody), status: 400, code: ""},
		{name: "Idempotency-Key with ESC", do: rawPost("\r\nIdempotency-Key: ab\x1b[2Jcd", okBody), status: 400, code: ""},
		{name: "Idempotency-Key with NUL", do: rawPost("\r\nIdempotency-Key: ab\x00cd", okBody), status: 400, code: ""},
		{name: "Idempotency-Key with bare CR and a header", do: rawPost("\r\nIdempotency-Key: ab\rSet-Cookie: x=1", okBody), status: 400, code: "",
			check: noHeader("Set-Cookie")},

		{name: "Idempotency-Key with byte 0xff", do: rawPost("\r\nIdempotency-Key: ab\xffcd", okBody), status: 400, code: "idempotency_key_invalid"},
		{name: "quoted Idempotency-Key with a control character", do: rawPost("\r\nIdempotency-Key: \"ab\x01cd\"", okBody), status: 400, code: ""},
		{name: "Idempotency-Key with bare LF and a header", do: rawPost("\r\nIdempotency-Key: ab\nSet-Cookie: x=1", okBody), status: 200,
			check: noHeader("Set-Cookie")},
		{name: "Idempotency-Key with an encoded CRLF", do: postJSON(okBody, "Idempotency-Key", "ab%0d%0aSet-Cookie:%20x=1"), status: 200,
			check: noHeader("Set-Cookie")},

		// Headers.
		{name: "one header of 8 KiB", do: rawPost("\r\nX-Big: "+strings.Repeat("b", 8192), okBody), status: 431, code: "request_header_fields_too_large"},
		{name: "2000 headers", do: rawPost(strings.Repeat("\r\nX-H: v", 2000), okBody), status: 431, code: "request_header_fields_too_large"},
		{name: "100 small headers", do: rawPost(strings.Repeat("\r\nX-H: v", 100), okBody), status: 200},
		// RFC 9112 section 5.2 lets a server replace obs-fold with spaces.
		{name: "obs-fold continuation line", do: rawPost("\r\nIdempotency-Key: abc\r\n def", okBody), status: 200,
			check: func(t *testing.T, r hostileResult) {
				if k := r.header.Get("Idempotency-Key"); k != "abc def" {
					t.Errorf("folded key used as %q, want %q", k, "abc def")
				}
			}},
		{name: "X-Request-Id with CR and a header", do: rawPost("\r\nX-Request-Id: id\rSet-Cookie: y=1", okBody), status: 400, code: "",
			check: noHeader("Set-Cookie")},
		{name: "X-Request-Id of 2000 characters", do: rawPost("\r\nX-Request-Id: "+strings.Repeat("r", 2000), okBody), status: 200,
			check: func(t *testing.T, r hostileResult) {
				if id := r.header.Get("X-Request-Id"); len(id) > 128 {
					t.Errorf("a 2000-character X-Request-Id was echoed (%d characters)", len(id))
				}
			}},
		{name: "X-Request-Id with bare LF and a header", do: rawPost("\r\nX-Request-Id: id\nSet-Cookie: y=1", okBody), status: 200,
			check: noHeader("Set-Cookie")},
		{name: "model with an escaped CRLF and a header", do: postJSON(`{"model":"m\r\nSet-Cookie: z=1","messages":[]}`), status: 404, code: "model_not_found",
			check: noHeader("Set-Cookie")},
		{name: "empty bearer key", do: postAs("Authorization: Bearer ", okBody), status: 401, code: "invalid_api_key"},
		{name: "Basic credentials", do: postAs("Authorization: Basic dXNlcjpwYXNz", okBody), status: 401, code: "invalid_api_key"},
		{name: "two Authorization headers, the first valid", do: postAs(auth+"\r\nAuthorization: Bearer other", okBody), status: 401, code: "invalid_api_key"},
		{name: "two Authorization headers, the second valid", do: postAs("Authorization: Bearer other\r\n"+auth, okBody), status: 401, code: "invalid_api_key"},
		{name: "bearer key of 3000 characters", do: postJSON(okBody, "Authorization", "Bearer "+strings.Repeat("k", 3000)), status: 401, code: "invalid_api_key"},
		{name: "Last-Event-ID of 3000 characters", do: postJSON(chatBody("m", "resume", true), "Idempotency-Key", "hostile-lei-1", "Last-Event-ID", strings.Repeat("9", 3000)), status: 400, code: "invalid_last_event_id"},
		// The body is read as it is, never inflated: no gzip bomb.
		{name: "gzipped body", do: postJSON(gzipped(okBody), "Content-Encoding", "gzip"), status: 400, code: "invalid_json"},
		{name: "Expect 100-continue over the cap", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: 999999\r\nExpect: 100-continue\r\nConnection: close", chat, auth), ""), status: 413, code: "request_too_large"},
		{name: "unknown Transfer-Encoding", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nTransfer-Encoding: xchunked\r\nConnection: close", chat, auth), okBody), status: 400, code: ""},
		{name: "HTTP/2 preface", do: raw("PRI * HTTP/2.0\r\n\r\nSM", ""), status: 400, code: ""},
		{name: "HTTP/1.0 without Host", do: raw(fmt.Sprintf("POST %s HTTP/1.0\r\n%s\r\nContent-Length: %d", chat, auth, len(okBody)), okBody), status: 200},
		// A name no header the gateway reads can have: ignored.
		{name: "header name with a space", do: rawPost("\r\nBad Name: x", okBody), status: 200},
		// Request smuggling spellings are refused, not guessed at.
		{name: "space before the colon of Content-Length", do: rawPost("\r\nContent-Length : 3", okBody), status: 400, code: "bad_request"},
		{name: "space before the colon of Transfer-Encoding", do: rawPost("\r\nTransfer-Encoding : chunked", okBody), status: 400, code: "bad_request"},
		{name: "Content-Length and Transfer-Encoding", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close", chat, auth),
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(okBody), okBody)), status: 200},
		{name: "two different Content-Lengths", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: %d\r\nContent-Length: 3\r\nConnection: close", chat, auth, len(okBody)), okBody), status: 400, code: ""},
		{name: "negative Content-Length", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: -1\r\nConnection: close", chat, auth), okBody), status: 400, code: ""},
		{name: "request line without version", do: raw("POST "+chat, ""), status: 400, code: ""},
		{name: "binary garbage", do: raw("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", ""), status: 400, code: ""},

		// Bodies that do not match their framing.
		{name: "body shorter than Content-Length, then EOF", do: func(t *testing.T) hostileResult {
			return rawExchange(t, addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: %d\r\n\r\n%s", chat, auth, len(okBody)+100, okBody), true)
		}, status: 400, code: ""},
		{name: "chunk size not hex", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close", chat, auth), "zz\r\nabc\r\n0\r\n\r\n"), status: 400, code: ""},
		{name: "chunk size overflows", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close", chat, auth), "ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), status: 400, code: ""},
		{name: "chunk longer than its size", do: raw(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nTransfer-Encoding: chunked\r\nConnection: close", chat, auth), "2\r\nabcdef\r\n0\r\n\r\n"), status: 400, code: ""},
		{name: "chunked body cut before its last chunk", do: func(t *testing.T) hostileResult {
			return rawExchange(t, addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s", chat, auth, len(okBody)+50, okBody), true)
		}, status: 400, code: ""},

		// Paths around /admin: normalised before routing, so no spelling
		// reaches the admin API without the admin key, and none is a 5xx.
		{name: "/admin/../v1/models with a client key", do: get("/admin/../v1/models", testClientKey), status: 200},
		{name: "/admin/../v1/models without a key", do: get("/admin/../v1/models", ""), status: 401, code: "invalid_api_key"},
		{name: "/%61dmin/tasks/x with a client key", do: get("/%61dmin/tasks/x?tenant=team-a", testClientKey), status: 401, code: "invalid_api_key"},
		{name: "//admin/tasks/x with a client key", do: get("//admin/tasks/x?tenant=team-a", testClientKey), status: 401, code: "invalid_api_key"},
		{name: "/admin/tasks/%2e%2e with the admin key", do: get("/admin/tasks/%2e%2e?tenant=team-a", testAdminKey), status: 404, code: "not_found"},
		{name: "/admin/tasks/ with the admin key", do: get("/admin/tasks/?tenant=team-a", testAdminKey), status: 404, code: "not_found"},
		{name: "/%61dmin/tasks/x with the admin key", do: get("/%61dmin/tasks/x?tenant=team-a", testAdminKey), status: 404, code: "task_not_found"},
		{name: "admin key with a percent sign", do: get("/admin/tasks/50%25off?tenant=team-a", testAdminKey), status: 404, code: "task_not_found"},
		{name: "admin lookup of a key with %, // and ..", do: func(t *testing.T) hostileResult {
			const key = "50%off a//b/../c"
			if resp, b := post(t, g.URL, chat, chatBody("m", "odd key", false), "Idempotency-Key", key); resp.StatusCode != 200 {
				t.Fatalf("request with key %q: %d %s", key, resp.StatusCode, b)
			}
			return get("/admin/tasks/50%25off%20a%2F%2Fb%2F..%2Fc?tenant=team-a", testAdminKey)(t)
		}, status: 200, check: func(t *testing.T, r hostileResult) {
			if !bytes.Contains(r.body, []byte(`"status":"completed"`)) {
				t.Errorf("admin lookup of an odd key: %s", r.body)
			}
		}},
		{name: "admin key with an invalid escape", do: get("/admin/tasks/%zz?tenant=team-a", testAdminKey), status: 404, code: "task_not_found"},
		{name: "admin path with NUL", do: get("/admin/tasks/a%00b?tenant=team-a", testAdminKey), status: 404, code: "task_not_found"},
		{name: "/admin%2ftasks%2fx with a client key", do: get("/admin%2ftasks%2fx?tenant=team-a", testClientKey), status: 401, code: "invalid_api_key"},
		{name: "/admin/upstreams/../tasks/x with a client key", do: get("/admin/upstreams/../tasks/x?tenant=team-a", testClientKey), status: 401, code: "invalid_api_key"},
		{name: "/ADMIN/tasks/x with the admin key", do: get("/ADMIN/tasks/x?tenant=team-a", testAdminKey), status: 404, code: "not_found"},
		{name: "admin lookup with a tenant of 3000 characters", do: get("/admin/tasks/x?tenant="+strings.Repeat("t", 3000), testAdminKey), status: 404, code: "task_not_found"},
		{name: "task list with a garbage cursor", do: get("/admin/tasks?tenant=team-a&cursor=%00%ff", testAdminKey), status: 400, code: "invalid_parameter"},
		{name: "task list with a huge limit", do: get("/admin/tasks?tenant=team-a&limit=99999999999999999999", testAdminKey), status: 400, code: "invalid_parameter"},
		{name: "task list with a negative limit", do: get("/admin/tasks?tenant=team-a&limit=-1", testAdminKey), status: 400, code: "invalid_parameter"},
		{name: "chat path with a trailing slash", do: rawPost("", okBody), status: 200},
		{name: "chat path in capitals", do: raw(fmt.Sprintf("POST /V1/CHAT/COMPLETIONS HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: %d\r\nConnection: close", auth, len(okBody)), okBody), status: 404, code: "not_found"},
		{name: "chat path with an encoded NUL", do: raw(fmt.Sprintf("POST /v1/chat/completions%%00 HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: %d\r\nConnection: close", auth, len(okBody)), okBody), status: 404, code: "not_found"},
		{name: "chat path with a query of 3000 characters", do: raw(fmt.Sprintf("POST /v1/chat/completions?q=%s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: %d\r\nConnection: close", strings.Repeat("q", 3000), auth, len(okBody)), okBody), status: 200},
		{name: "TRACE on the chat path", do: raw("TRACE "+chat+" HTTP/1.1\r\nHost: gw\r\n"+auth+"\r\nConnection: close", ""), status: 405, code: "method_not_allowed"},
		{name: "CONNECT", do: raw("CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n"+auth+"\r\nConnection: close", ""), status: 404, code: "not_found"},
		{name: "path of 3000 characters", do: get("/"+strings.Repeat("p", 3000), testClientKey), status: 404, code: "not_found"},
		{name: "absolute-form target", do: get("http://evil.example/v1/models", testClientKey), status: 200},
		{name: "path without a leading slash", do: get("v1/models", testClientKey), status: 400, code: "bad_request"},

		// Slow clients: cut off by read_header_timeout (500ms here) and
		// read_timeout (1s) with 408, not held until they finish.
		{name: "connection that sends nothing", do: trickle(addr, "", "", 0), status: 408, code: "request_timeout"},
		{name: "headers sent a byte every 100ms", do: trickle(addr, "POST "+chat+" HTTP/1.1\r\nHost: gw\r\n", "X-Slow: "+strings.Repeat("s", 200), 100*time.Millisecond), status: 408, code: "request_timeout"},
		{name: "request line sent a byte every 100ms", do: trickle(addr, "", "POST "+chat+" HTTP/1.1\r\n", 100*time.Millisecond), status: 408, code: "request_timeout"},
		{name: "body sent a byte every 100ms", do: trickle(addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: %d\r\n\r\n", chat, auth, len(okBody)), okBody, 100*time.Millisecond), status: 408, code: "request_timeout"},
		{name: "body shorter than Content-Length, connection kept open", do: trickle(addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nContent-Length: %d\r\n\r\n%s", chat, auth, len(okBody)+100, okBody), "", 0), status: 408, code: "request_timeout"},
		{name: "chunked body that stops", do: trickle(addr, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: gw\r\n%s\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", chat, auth), "", 0), status: 408, code: "request_timeout"},
		// Clients that stop reading: the leader's stream is still read to
		// its end and recorded (detach_on_disconnect), and the gateway
		// drops the connection after write_timeout (1s) instead of
		// holding the stream's events for it; so does a replay.
		{name: "client that stops reading its stream", do: stopReading(t, g.URL, addr, "stuck", fake), status: 200},

		// Upstreams that misbehave: bounded by the caps and timeouts.
		{name: "upstream body over 64 MiB", do: postJSON(chatBody("huge-body", "x", false)), status: 502, code: "upstream_failed"},
		{name: "upstream garbage SSE", do: postJSON(chatBody("garbage-sse", "x", true)), status: 200, check: streamErrorEvent},
		{name: "upstream SSE event over 4 MiB", do: postJSON(chatBody("huge-event", "x", true)), status: 200, check: streamErrorEvent},
		{name: "upstream stream that never ends", do: postJSON(chatBody("endless-sse", "x", true)), status: 200, check: streamErrorEvent},
		{name: "upstream body that never ends", do: postJSON(chatBody("endless-body", "x", false)), status: 504, code: "upstream_failed"},
	}
	for _, c := range cases {
		calls := fake.Calls()
		r := c.do(t)
		if r.status >= 400 && r.status < 500 && fake.Calls() != calls {
			t.Errorf("%s: refused with %d after %d upstream calls; a refusal makes none", c.name, r.status, fake.Calls()-calls)
		}
		switch {
		case r.status != c.status:
			t.Errorf("%s: status %d, want %d; body %.300s", c.name, r.status, c.status, r.body)
		case r.status >= 400:
			checkErrorShape(t, c.name, r.status, r.body, c.status, c.code)
		}
		if c.check != nil {
			c.check(t, r)
		}
		healthy(t, g.URL, c.name)
	}

	// Nothing left locked: no case left a task processing (every keyed
	// case's key answers again), read from the admin task list.
	waitFor(t, 20*time.Second, "no task left processing", func() bool {
		r := get("/admin/tasks?tenant=team-a&status=processing", testAdminKey)(t)
		if r.status != 200 {
			t.Fatalf("task list: %d %s", r.status, r.body)
		}
		return bytes.Contains(r.body, []byte(`"tasks":[]`))
	})

	// Nothing left behind: the goroutines of the cases ended and their
	// buffers were freed (slack for the runtime's and the clients' own).
	if n := settledGoroutines(base + 10); n > base+10 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before the catalogue, %d after\n%s", base, n, buf[:runtime.Stack(buf, true)])
	}
	if h := heapInUse(); h > baseHeap+64<<20 {
		t.Errorf("heap in use: %d MiB before the catalogue, %d MiB after", baseHeap>>20, h>>20)
	}
}

// gzipped returns s compressed with gzip.
func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// manyMembers returns n distinct members "kN":N for an object.
func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

// healthy checks that a normal request is answered and /readyz is 200.
func healthy(t *testing.T, url, after string) {
	t.Helper()
	resp, b := post(t, url, "/v1/chat/completions", chatBody("m", "normal after "+after, false))
	if resp.StatusCode != 200 {
		t.Fatalf("normal request after %s: %d %s", after, resp.StatusCode, b)
	}
	r, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatalf("/readyz after %s: %v", after, err)
	}
	_ = r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("/readyz after %s: %d", after, r.StatusCode)
	}
}

func noHeader(name string) func(t *testing.T, r hostileResult) {
	return func(t *testing.T, r hostileResult) {
		if r.header.Get(name) != "" {
			t.Errorf("the response carries an injected %s: %q", name, r.header.Get(name))
		}
	}
}

// streamErrorEvent checks that a stream from a broken upstream ended with
// the gateway's error event, so SDKs raise instead of seeing a clean end.
func streamErrorEvent(t *testing.T, r hostileResult) {
	t.Helper()
	if !bytes.Contains(r.body, []byte(`"code":"stream_interrupted"`)) {
		t.Errorf("stream from a broken upstream did not end with an error event: %.500s", r.body)
	}
}

// trickle sends head at once, then rest one byte per every (nothing more
// when every is 0) while it reads the answer: the gateway must answer, or
// close, within ten seconds however slowly the client writes.
func trickle(addr, head, rest string, every time.Duration) func(t *testing.T) hostileResult {
	return func(t *testing.T) hostileResult {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		defer close(done)
		if every > 0 {
			go func() {
				for i := 0; i < len(rest); i++ {
					select {
					case <-done:
						return
					case <-time.After(every):
					}
					if _, err := conn.Write([]byte{rest[i]}); err != nil {
						return
					}
				}
			}()
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("a slow client was neither answered nor cut off within 10s")
				return hostileResult{status: -1}
			}
			return hostileResult{}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return hostileResult{resp.StatusCode, resp.Header, b}
	}
}

// stopReading sends a keyed stream request on a connection with a tiny
// receive buffer and never reads it; once the task is recorded, a
// replay of it is sent the same way. Both connections must be dropped
// by the gateway (write_timeout), which the reads at the end observe as
// an end of stream, not a read timeout. The streams are larger than the
// kernel's socket buffers, so the gateway's writes do block.
func stopReading(t *testing.T, url, addr, key string, fake *upstreamtest.Server) func(t *testing.T) hostileResult {
	return func(t *testing.T) hostileResult {
		b := upstreamtest.Behavior{Chunks: 300, Content: strings.Repeat("z", 3<<20)}
		fake.SetBehavior("m-big", b)
		body := chatBody("m-big", "stop reading", true)
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}
		open := func() net.Conn {
			conn, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nAuthorization: Bearer %s\r\nIdempotency-Key: %s\r\nContent-Length: %d\r\n\r\n%s", testClientKey, key, len(body), body)
			return conn
		}
		leader := open()
		defer leader.Close()
		waitFor(t, 20*time.Second, "the unread stream to be recorded", func() bool {
			_, task := adminTask(t, url, key, "team-a")
			return task["status"] == "completed"
		})
		replay := open()
		defer replay.Close()
		for _, c := range []net.Conn{leader, replay} {
			// Give write_timeout time to pass, then drain: the gateway's
			// close shows as EOF (or a reset) once the buffers are read.
			time.Sleep(1500 * time.Millisecond)
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("the gateway kept writing to a client that stopped reading (%d bytes read before the timeout)", n)
			}
			if n >= 3<<20 {
				t.Errorf("a client that stopped reading still got the whole stream (%d bytes)", n)
			}
		}
		if n := fake.CallsForModel("m-big"); n != 1 {
			t.Errorf("upstream calls for the unread stream = %d, want 1", n)
		}
		return hostileResult{status: 200}
	}
}

// rawExchange writes payload to a new connection and reads one answer;
// halfClose closes the write side after it, as a client that gives up
// sending does. The status is 0 when the gateway closed without answering.
func rawExchange(t *testing.T, addr, payload string, halfClose bool) hostileResult {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(conn, payload); err != nil {
		// The gateway may answer and close before it read everything.
		t.Logf("write: %v", err)
	}
	if halfClose {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	// An interim 100 Continue is followed by the final answer.
	for err == nil && resp.StatusCode == http.StatusContinue {
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("no answer and no close within 15s (a hang)")
		}
		return hostileResult{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hostileResult{resp.StatusCode, resp.Header, b}
}

// settledGoroutines returns the goroutine count once it is at most want
// (or after five seconds); want 0 waits for it to stop falling.
func settledGoroutines(want int) int {
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		http.DefaultClient.CloseIdleConnections()
		m := runtime.NumGoroutine()
		if (want > 0 && m <= want) || (want == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// startHostileUpstream serves answers no real provider should send,
// chosen by the request's model: a body over the gateway's 64 MiB cap,
// an event stream of binary garbage, one event of 5 MiB, a stream that
// only ever sends keep-alive comments, and a JSON body that never ends.
func startHostileUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		fl := w.(http.Flusher)
		switch req.Model {
		case "huge-body":
			w.Header().Set("Content-Type", "application/json")
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			_, _ = io.WriteString(w, `{"x":"`)
			for i := 0; i < 65; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			_, _ = io.WriteString(w, `"}`)
		case "garbage-sse":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 50; i++ {
				_, _ = w.Write([]byte{0, 0xff, '\r', 'd', 'a', 't', 'a', ':', 0x1b, '\n', byte(i)})
			}
			_, _ = io.WriteString(w, "data: {not json\n\n\r\r\n")
		case "huge-event":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: ")
			chunk := bytes.Repeat([]byte("y"), 1<<20)
			for i := 0; i < 5; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			_, _ = io.WriteString(w, "\n\ndata: [DONE]\n\n")
		case "endless-sse", "endless-body":
			if req.Model == "endless-sse" {
				w.Header().Set("Content-Type", "text/event-stream")
			} else {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"choices":[`)
			}
			for {
				if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
					return
				}
				fl.Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		default:
			w.WriteHeader(404)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/v1"
}

var bucketRe = regexp.MustCompile(`,?(le|vmrange)="[^"]*"`)

// seriesOf returns the series names (metric and labels) of a /metrics
// scrape, without the Go runtime's and the process's own.
func seriesOf(scrape string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(scrape, "\n") {
		if line == "" || line[0] == '#' || strings.HasPrefix(line, "go_") || strings.HasPrefix(line, "process_") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			// A histogram's buckets are one series for this count.
			out[bucketRe.ReplaceAllString(line[:i], "")] = true
		}
	}
	return out
}

func newSeries(before, after map[string]bool) []string {
	var out []string
	for s := range after {
		if !before[s] {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Floods of distinct attacker-chosen values (model names, idempotency
// keys, paths, request ids, client keys, methods) must not grow /metrics:
// label values come from configuration and fixed words only (DESIGN.md
// section 6). Each kind is sent once before the baseline scrape, so the
// series its status creates are counted there; the flood then adds none.
func TestHostileFloodsKeepMetricsBounded(t *testing.T) {
	fake := startFake(t)
	bad := startHostileUpstream(t)
	strict := startGateway(t, hostileConfig(t, fake.URL, bad))                  // no "*" route
	open := startGateway(t, testConfig(t, fake.URL, "dedupe: {derive: off}\n")) // "*": any model goes upstream
	chat := "/v1/chat/completions"
	flood := func(i int) {
		v := fmt.Sprintf("flood-%d-%x", i, i*7919)
		post(t, strict.URL, chat, chatBody("no-such-"+v, "x", false))
		post(t, strict.URL, chat, chatBody("m", "x", false), "Idempotency-Key", v, "X-Request-Id", v)
		post(t, strict.URL, "/v1/"+v, chatBody("m", "x", false))
		post(t, strict.URL, chat, chatBody("m", "x", false), "Authorization", "Bearer sk-"+v)
		req, _ := http.NewRequest("M"+strings.ToUpper(fmt.Sprintf("%x", i)), strict.URL+chat, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
		post(t, open.URL, chat, chatBody("passthrough-"+v, "x", false))
		post(t, open.URL, chat, chatBody("passthrough-"+v, "x", true))
	}
	flood(0)
	before := map[string]map[string]bool{"strict": seriesOf(scrape(t, strict.URL)), "open": seriesOf(scrape(t, open.URL))}
	for i := 1; i <= 300; i++ {
		flood(i)
	}
	for name, g := range map[string]*gw{"strict": strict, "open": open} {
		if added := newSeries(before[name], seriesOf(scrape(t, g.URL))); len(added) > 0 {
			t.Errorf("%s gateway: the flood added %d series, e.g. %q", name, len(added), added[:min(5, len(added))])
		}
	}
	if n := fake.Calls(); n < 3*300 {
		t.Fatalf("the flood reached the upstream %d times, want at least 900 (it must exercise the answered paths)", n)
	}
}
