package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// taskView is the part of GET /admin/tasks/{key} these tests read.
type taskView struct {
	Tenant   string `json:"tenant"`
	Status   string `json:"status"`
	Attempts []struct {
		N          int    `json:"n"`
		Provider   string `json:"provider"`
		Model      string `json:"model"`
		Outcome    string `json:"outcome"`
		HTTPStatus int    `json:"http_status"`
		Error      string `json:"error"`
	} `json:"attempts"`
}

func coreAdminTask(t *testing.T, url, key string) taskView {
	t.Helper()
	req, err := http.NewRequest("GET", url+"/admin/tasks/"+key+"?tenant=team-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /admin/tasks/%s = %d %s", key, resp.StatusCode, b)
	}
	var v taskView
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("cannot decode task %s: %v", b, err)
	}
	return v
}

// get sends a GET with tenant A's key ("" sends no Authorization).
func coreGet(t *testing.T, url, key string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Acceptance (issue 2, #2): 503, then a hang past the provider timeout,
// then an answer: the client gets the third target's 200 and the attempt
// log holds all three.
func TestFallbackThroughErrorAndTimeout(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m503", upstreamtest.Behavior{Status: 503})
	fake.SetBehavior("mhang", upstreamtest.Behavior{Hang: true})
	fake.SetBehavior("mok", upstreamtest.Behavior{})
	g := startGateway(t, providerConfig(t, fake.URL, `providers:
  fake: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 5s, first_byte_timeout: 3s}
  fake2: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 500ms, first_byte_timeout: 500ms}
  fake3: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 5s, first_byte_timeout: 3s}
`, `routes:
  - model: chain
    targets: [{provider: fake, model: m503}, {provider: fake2, model: mhang}, {provider: fake3, model: mok}]
`))
	resp, body := post(t, g.URL, "/v1/chat/completions", chatBody("chain", "fall back please", false), "Idempotency-Key", "fallback-key-1")
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d, body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Gateway-Attempts"); got != "3" {
		t.Errorf("X-Gateway-Attempts = %q, want 3", got)
	}
	if got := resp.Header.Get("X-Gateway-Provider"); got != "fake3" {
		t.Errorf("X-Gateway-Provider = %q, want fake3", got)
	}
	if want := upstreamtest.ContentFor(upstreamtest.Behavior{}, "mok"); !bytes.Contains(body, []byte(want)) {
		t.Errorf("body %s does not hold the third target's answer %q", body, want)
	}
	for _, m := range []string{"m503", "mhang", "mok"} {
		if n := fake.CallsForModel(m); n != 1 {
			t.Errorf("calls for %s = %d, want 1", m, n)
		}
	}
	task := coreAdminTask(t, g.URL, "fallback-key-1")
	if task.Status != "completed" {
		t.Errorf("task status = %q, want completed", task.Status)
	}
	type rec struct {
		provider, model, outcome string
		status                   int
	}
	want := []rec{{"fake", "m503", "error", 503}, {"fake2", "mhang", "timeout", 0}, {"fake3", "mok", "success", 200}}
	var got []rec
	for _, a := range task.Attempts {
		got = append(got, rec{a.Provider, a.Model, a.Outcome, a.HTTPStatus})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attempts = %+v, want %+v", got, want)
	}
}

// Acceptance (issue 2, #3): an upstream 400 is the client's answer, byte
// for byte, and no other target is tried.
func TestUpstream400ReturnedAsIs(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("m400", upstreamtest.Behavior{Status: 400})
	fake.SetBehavior("mok", upstreamtest.Behavior{})
	g := startGateway(t, testConfig(t, fake.URL, `routes:
  - model: c400
    targets: [{provider: fake, model: m400}, {provider: fake2, model: mok}]
`))
	// What the fake answers for this model, straight from the fake. Its
	// message numbers the calls: this is call 1, the gateway's is call 2.
	direct, err := http.Post(fake.URL+"/chat/completions", "application/json", strings.NewReader(chatBody("m400", "bad", false)))
	if err != nil {
		t.Fatal(err)
	}
	directBody, _ := io.ReadAll(direct.Body)
	direct.Body.Close()
	if direct.StatusCode != 400 || !bytes.Contains(directBody, []byte("(call 1)")) {
		t.Fatalf("fake answered %d %s directly", direct.StatusCode, directBody)
	}
	want := bytes.Replace(directBody, []byte("(call 1)"), []byte("(call 2)"), 1)

	resp, body := post(t, g.URL, "/v1/chat/completions", chatBody("c400", "bad", false))
	if resp.StatusCode != 400 {
		t.Fatalf("status = %d, want 400; body %s", resp.StatusCode, body)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("body = %q\nwant   %q", body, want)
	}
	if n := fake.CallsForModel("mok"); n != 0 {
		t.Fatalf("second target called %d times after a 400", n)
	}
	if got := resp.Header.Get("X-Gateway-Attempts"); got != "1" {
		t.Errorf("X-Gateway-Attempts = %q, want 1", got)
	}
}

// sseLine is one line of a stream and when the client read it.
type sseLine struct {
	text string
	at   time.Time
}

// streamLines posts a streaming request and reads the raw body line by
// line as it arrives.
func streamLines(t *testing.T, url, body string, headers ...string) (*http.Response, []sseLine) {
	t.Helper()
	resp, err := http.DefaultClient.Do(newPost(t, url+"/v1/chat/completions", body, headers...))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var lines []sseLine
	for {
		l, err := br.ReadString('\n')
		if l != "" {
			lines = append(lines, sseLine{strings.TrimRight(l, "\r\n"), time.Now()})
		}
		if err != nil {
			// A cut stream may end with an error of the chunked encoding;
			// what the client saw until then is what matters.
			break
		}
	}
	return resp, lines
}

func dataLines(lines []sseLine) []sseLine {
	var out []sseLine
	for _, l := range lines {
		if strings.HasPrefix(l.text, "data:") {
			out = append(out, l)
		}
	}
	return out
}

// Acceptance (issue 2, #4): a stream is relayed as it is produced, not
// buffered to its end.
func TestStreamRelayedAsProduced(t *testing.T) {
	fake := startFake(t)
	b := upstreamtest.Behavior{Chunks: 10, Interval: 100 * time.Millisecond}
	fake.SetBehavior("slowstream", b)
	g := startGateway(t, testConfig(t, fake.URL, ""))
	for _, mode := range []struct{ name, key string }{{"recorded", "stream-key-1"}, {"derived", ""}} {
		t.Run(mode.name, func(t *testing.T) {
			var hdr []string
			if mode.key != "" {
				hdr = []string{"Idempotency-Key", mode.key}
			}
			resp, lines := streamLines(t, g.URL, chatBody("slowstream", "stream "+mode.name, true), hdr...)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			data := dataLines(lines)
			if len(data) < 11 || data[len(data)-1].text != "data: [DONE]" {
				t.Fatalf("got %d data lines, last %q; want 10 chunks and [DONE]", len(data), data[len(data)-1].text)
			}
			var text strings.Builder
			for _, l := range data[:len(data)-1] {
				var ch struct {
					Choices []struct {
						Delta struct{ Content string } `json:"delta"`
					} `json:"choices"`
				}
				if err := json.Unmarshal([]byte(strings.TrimPrefix(l.text, "data: ")), &ch); err != nil {
					t.Fatalf("bad chunk %q: %v", l.text, err)
				}
				if len(ch.Choices) > 0 {
					text.WriteString(ch.Choices[0].Delta.Content)
				}
			}
			if text.String() != upstreamtest.StreamText(b) {
				t.Fatalf("streamed text = %q, want %q", text.String(), upstreamtest.StreamText(b))
			}
			first, last := data[0].at, data[len(data)-1].at
			// The fake spends 900 ms between its first and last chunk.
			if !first.Before(last.Add(-500 * time.Millisecond)) {
				t.Fatalf("first event read %v before the last; want over 500ms (stream buffered?)", last.Sub(first))
			}
		})
	}
}

// Acceptance (issue 2, #5): a stream the upstream cuts ends for the
// client with an error event, never a clean [DONE].
func TestStreamCutEndsWithErrorEvent(t *testing.T) {
	fake := startFake(t)
	fake.SetBehavior("cut", upstreamtest.Behavior{Chunks: 10, DropAfter: 3, Interval: 20 * time.Millisecond})
	for _, mode := range []struct{ name, extra, key string }{
		{"recorded", "", "cut-key-1"},
		{"dedupe off", "dedupe: {derive: off}\n", ""},
	} {
		t.Run(mode.name, func(t *testing.T) {
			g := startGateway(t, testConfig(t, fake.URL, mode.extra))
			var hdr []string
			if mode.key != "" {
				hdr = []string{"Idempotency-Key", mode.key}
			}
			resp, lines := streamLines(t, g.URL, chatBody("cut", "cut "+mode.name, true), hdr...)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			data := dataLines(lines)
			if len(data) == 0 {
				t.Fatal("no events")
			}
			for _, l := range data {
				if l.text == "data: [DONE]" {
					t.Fatalf("a cut stream ended with [DONE]: %v", data)
				}
			}
			lastEv := data[len(data)-1].text
			var e struct {
				Error *struct {
					Message string `json:"message"`
					Type    string `json:"type"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(lastEv, "data: ")), &e); err != nil || e.Error == nil || e.Error.Message == "" {
				t.Fatalf("last event %q is not an error event", lastEv)
			}
			if n := len(data) - 1; n != 3 {
				t.Fatalf("%d content events before the error, want 3: %v", n, data)
			}
			if mode.key != "" {
				if task := coreAdminTask(t, g.URL, mode.key); task.Status != "failed" {
					t.Fatalf("task status after a cut stream = %q, want failed", task.Status)
				}
			}
		})
	}
}

// checkErrorShape asserts OpenAI's error JSON with the given status and code.
func checkErrorShape(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status = %d, want %d; body %s", what, status, wantStatus, body)
		return
	}
	var v map[string]map[string]json.RawMessage
	if err := json.Unmarshal(body, &v); err != nil || len(v) != 1 || v["error"] == nil {
		t.Errorf("%s: body %s is not {\"error\":{...}} (%v)", what, body, err)
		return
	}
	e := v["error"]
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Errorf("%s: error lacks %q: %s", what, k, body)
		}
	}
	var msg, typ string
	if json.Unmarshal(e["message"], &msg) != nil || msg == "" || json.Unmarshal(e["type"], &typ) != nil || typ == "" {
		t.Errorf("%s: message and type must be non-empty strings: %s", what, body)
	}
	var param *string
	if err := json.Unmarshal(e["param"], &param); err != nil {
		t.Errorf("%s: param is neither a string nor null: %s", what, body)
	}
	var code string
	if err := json.Unmarshal(e["code"], &code); err != nil || (wantCode != "" && code != wantCode) {
		t.Errorf("%s: code = %s, want %q", what, e["code"], wantCode)
	}
}

// rawRequest sends bytes the Go client refuses to send (control characters
// in a header) and reads the answer.
func rawRequest(t *testing.T, gwURL, path string, headers []string, body string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gwURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n", path, len(body))
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, rb
}

// Acceptance (issue 2, #6): bad inputs get their status and OpenAI's
// error JSON, reach no upstream, and leave the gateway serving.
func TestBadInputs(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, testConfig(t, fake.URL, `max_body_bytes: 1024
routes:
  - model: known
    targets: [{provider: fake}]
`))
	chat := "/v1/chat/completions"
	normal := 0
	cases := []struct {
		name     string
		do       func() (int, []byte)
		status   int
		wantCode string
	}{
		{"malformed JSON", func() (int, []byte) {
			r, b := post(t, g.URL, chat, `{"model":"known","messages":[`)
			return r.StatusCode, b
		}, 400, "invalid_json"},
		{"not an object", func() (int, []byte) {
			r, b := post(t, g.URL, chat, `["model","known"]`)
			return r.StatusCode, b
		}, 400, "invalid_json"},
		{"invalid JSON after the model", func() (int, []byte) {
			r, b := post(t, g.URL, chat, `{"model":"known","messages":[{"role":"user","content":"x"}],"stream":false,"n":tru}`)
			return r.StatusCode, b
		}, 400, "invalid_json"},
		{"missing model", func() (int, []byte) {
			r, b := post(t, g.URL, chat, `{"messages":[{"role":"user","content":"x"}]}`)
			return r.StatusCode, b
		}, 400, "missing_model"},
		{"non-string model", func() (int, []byte) {
			r, b := post(t, g.URL, chat, `{"model":42,"messages":[]}`)
			return r.StatusCode, b
		}, 400, "invalid_model"},
		{"duplicate model", func() (int, []byte) {
			r, b := post(t, g.URL, chat, `{"model":"known","model":"other","messages":[]}`)
			return r.StatusCode, b
		}, 400, ""},
		{"body over max_body_bytes", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("known", strings.Repeat("x", 2000), false))
			return r.StatusCode, b
		}, 413, "request_too_large"},
		{"GET on chat completions", func() (int, []byte) {
			r, b := coreGet(t, g.URL+chat, testClientKey)
			if r.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST (got %q)", r.Header.Get("Allow"))
			}
			return r.StatusCode, b
		}, 405, "method_not_allowed"},
		{"unknown route model", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("no-such-model", "x", false))
			return r.StatusCode, b
		}, 404, "model_not_found"},
		{"unknown path", func() (int, []byte) {
			r, b := post(t, g.URL, "/v1/nothing/here", chatBody("known", "x", false))
			return r.StatusCode, b
		}, 404, ""},
		{"missing bearer key", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("known", "x", false), "Authorization", "")
			return r.StatusCode, b
		}, 401, "invalid_api_key"},
		{"wrong bearer key", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("known", "x", false), "Authorization", "Bearer sk-wrong")
			return r.StatusCode, b
		}, 401, "invalid_api_key"},
		{"basic auth with the right key", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("known", "x", false), "Authorization", "Basic "+testClientKey)
			return r.StatusCode, b
		}, 401, "invalid_api_key"},
		{"Idempotency-Key of 300 chars", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("known", "x", false), "Idempotency-Key", strings.Repeat("k", 300))
			return r.StatusCode, b
		}, 400, "idempotency_key_invalid"},
		{"Idempotency-Key with a tab inside", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("known", "x", false), "Idempotency-Key", "ab\tcd")
			return r.StatusCode, b
		}, 400, "idempotency_key_invalid"},
		// fasthttp refuses other control characters in any header before
		// the handler runs; the answer is still a 400 in OpenAI's shape.
		{"Idempotency-Key with a control char", func() (int, []byte) {
			return rawRequest(t, g.URL, chat, []string{"Authorization: Bearer " + testClientKey, "Idempotency-Key: ab\x01cd"}, chatBody("known", "x", false))
		}, 400, ""},
		{"Idempotency-Key with a non-ASCII byte", func() (int, []byte) {
			r, b := post(t, g.URL, chat, chatBody("known", "x", false), "Idempotency-Key", "caf\xc3\xa9")
			return r.StatusCode, b
		}, 400, "idempotency_key_invalid"},
	}
	for _, c := range cases {
		status, body := c.do()
		checkErrorShape(t, c.name, status, body, c.status, c.wantCode)
		if n := fake.Calls(); n != normal {
			t.Errorf("%s: upstream called (%d calls, want %d)", c.name, n, normal)
		}
		normal++
		resp, b := post(t, g.URL, chat, chatBody("known", "normal after "+c.name, false))
		if resp.StatusCode != 200 {
			t.Fatalf("normal request after %s: %d %s", c.name, resp.StatusCode, b)
		}
	}
}

// The upstream sees the provider's key, never the client's, and the
// client's body with only the model rewritten.
func TestUpstreamGetsProviderKeyAndRewrittenModel(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, testConfig(t, fake.URL, `routes:
  - model: alias
    targets: [{provider: fake, model: vendor/real-model}]
  - model: "*"
    targets: [{provider: fake2}]
`))
	body := "{ \"messages\" : [ {\"role\":\"user\", \"content\":\"keep  my \\u00e9 bytes\", \"model\":\"alias\"} ],\n\t\"model\" :  \"alias\" , \"temperature\":0.50, \"metadata\":{\"model\":\"alias\"} }"
	resp, b := post(t, g.URL, "/v1/chat/completions", body, "X-Custom", "client-header")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	resp, b = post(t, g.URL, "/v1/chat/completions", chatBody("passthrough-model", "x", false))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("upstream got %d requests, want 2", len(reqs))
	}
	want := strings.Replace(body, `"model" :  "alias"`, `"model" :  "vendor/real-model"`, 1)
	if string(reqs[0].Body) != want {
		t.Errorf("upstream body = %s\nwant            %s", reqs[0].Body, want)
	}
	if reqs[1].Model != "passthrough-model" || string(reqs[1].Body) != chatBody("passthrough-model", "x", false) {
		t.Errorf("a \"*\" route changed the body: %s", reqs[1].Body)
	}
	for i, r := range reqs {
		if r.Authorization != "Bearer upstream-secret-key" {
			t.Errorf("request %d: Authorization = %q, want the provider's key", i, r.Authorization)
		}
		for name, vals := range r.Header {
			for _, v := range vals {
				if strings.Contains(v, testClientKey) {
					t.Errorf("request %d: header %s carries the client's key", i, name)
				}
			}
		}
	}
}

func TestModelsAndHealth(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, testConfig(t, fake.URL, `routes:
  - model: zeta
    targets: [{provider: fake}]
  - model: alpha
    targets: [{provider: fake2}]
  - model: "*"
    targets: [{provider: fake3}]
`))
	resp, b := coreGet(t, g.URL+"/v1/models", testClientKey)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v1/models = %d %s", resp.StatusCode, b)
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created *int64 `json:"created"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("cannot decode %s: %v", b, err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.Created == nil || m.OwnedBy == "" {
			t.Errorf("model entry %+v lacks object/created/owned_by", m)
		}
	}
	if list.Object != "list" || !sort.StringsAreSorted(ids) || strings.Join(ids, ",") != "alpha,zeta" {
		t.Fatalf("models = %s, want a list of alpha and zeta", b)
	}
	resp, b = coreGet(t, g.URL+"/v1/models", "")
	checkErrorShape(t, "models without a key", resp.StatusCode, b, 401, "invalid_api_key")

	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, b := coreGet(t, g.URL+p, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d %s", p, resp.StatusCode, b)
		}
	}
	if fake.Calls() != 0 {
		t.Fatalf("listing models called the upstream %d times", fake.Calls())
	}
}

// A provider without an api_key is skipped and recorded as such.
func TestProviderWithoutKeySkipped(t *testing.T) {
	fake := startFake(t)
	g := startGateway(t, providerConfig(t, fake.URL, `providers:
  nokey: {base_url: FAKE_URL, api_key: "", timeout: 5s}
  fake: {base_url: FAKE_URL, api_key: upstream-secret-key, timeout: 5s}
`, `routes:
  - model: skip
    targets: [{provider: nokey, model: mskip}, {provider: fake, model: mok}]
`))
	resp, b := post(t, g.URL, "/v1/chat/completions", chatBody("skip", "x", false), "Idempotency-Key", "skip-key-1")
	if resp.StatusCode != 200 || resp.Header.Get("X-Gateway-Provider") != "fake" || resp.Header.Get("X-Gateway-Attempts") != "2" {
		t.Fatalf("status %d provider %q attempts %q: %s", resp.StatusCode, resp.Header.Get("X-Gateway-Provider"), resp.Header.Get("X-Gateway-Attempts"), b)
	}
	if fake.CallsForModel("mskip") != 0 || fake.CallsForModel("mok") != 1 {
		t.Fatalf("calls: mskip %d, mok %d; want 0 and 1", fake.CallsForModel("mskip"), fake.CallsForModel("mok"))
	}
	task := coreAdminTask(t, g.URL, "skip-key-1")
	if len(task.Attempts) != 2 || task.Attempts[0].Outcome != "skipped" || task.Attempts[0].Provider != "nokey" || task.Attempts[1].Outcome != "success" {
		t.Fatalf("attempts = %+v, want skipped then success", task.Attempts)
	}
}
