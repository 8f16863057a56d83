package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe/seal"
	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

// Encryption at rest end to end (issue 13): answers and streams recorded
// through a real gateway are sealed in Postgres, in the bbolt file and in
// Redis, replay byte for byte, survive a key rotation, and a wrong or
// missing key stops the start.

const (
	encKey1 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
	encKey2 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	encKey3 = "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	// encMarker is the answer's text: one word, repeated so that every
	// stream piece holds it whole.
	encMarker = "zebraquartz4117"
)

func encKeysYAML(keys ...string) string {
	if len(keys) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("  encryption_keys:\n")
	for _, k := range keys {
		id := map[string]string{encKey1: "k1", encKey2: "k2", encKey3: "k3"}[k]
		fmt.Fprintf(&b, "    - {id: %s, key: %q}\n", id, k)
	}
	return b.String()
}

func keyID(t *testing.T, b64 string) seal.ID {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return seal.IDOf(b)
}

type encStore struct {
	// yaml is the store (and lock) section without its keys.
	yaml func(keys ...string) string
	// stored returns the bytes at rest; bodies, when set, every recorded
	// response body as stored.
	stored func(t *testing.T) []byte
	bodies func(t *testing.T) [][]byte
	// live returns the data fields of the live streams in Redis.
	live func(t *testing.T) []string
}

func TestEncryptionAtRestPostgresRedis(t *testing.T) {
	cl := newCluster(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cl.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	opt, err := redis.ParseURL(cl.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	bodies := func(t *testing.T) [][]byte {
		rows, err := conn.Query(ctx, `SELECT coalesce(resp_content_type, '')::bytea || coalesce(resp_body, ''::bytea) FROM tasks WHERE status = 'completed' ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	base := strings.Replace(cl.yaml(t, ""), "store: {kind: postgres, url: ", "store:\n  kind: postgres\n  url: ", 1)
	base = strings.Replace(base, "}\nlock:", "\nlock:", 1)
	testEncryptionAtRest(t, encStore{
		yaml: func(keys ...string) string {
			return strings.Replace(base, "\nlock:", "\n"+strings.TrimSuffix(encKeysYAML(keys...), "\n")+"\nlock:", 1)
		},
		stored: func(t *testing.T) []byte { return bytes.Join(bodies(t), nil) },
		bodies: bodies,
		live: func(t *testing.T) []string {
			var out []string
			keys, err := rc.Keys(ctx, cl.prefix+"live:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				msgs, err := rc.XRange(ctx, k, "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range msgs {
					if d, ok := m.Values["d"].(string); ok && d != "" { // "" on the end marker
						out = append(out, d)
					}
				}
			}
			return out
		},
	})
}

func TestEncryptionAtRestEmbedded(t *testing.T) {
	path := t.TempDir() + "/gw.db"
	stored := func(t *testing.T) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	testEncryptionAtRest(t, encStore{
		yaml: func(keys ...string) string {
			return fmt.Sprintf("store:\n  kind: embedded\n  path: %q\n%s", path, encKeysYAML(keys...))
		},
		stored: stored,
	})
}

func testEncryptionAtRest(t *testing.T, st encStore) {
	fake := startFake(t)
	fake.SetBehavior("m", upstreamtest.Behavior{Content: strings.Repeat(encMarker+" ", 4), Chunks: 2})
	start := func(keys ...string) *gw {
		t.Helper()
		return startGateway(t, testConfig(t, fake.URL, st.yaml(keys...)))
	}
	plainBody := chatBody("m", "plain question", false)
	streamBody := sdkBody("m", "stream question")
	ask := func(g *gw, body, key string) ([]byte, string) {
		t.Helper()
		resp, b := post(t, g.URL, "/v1/chat/completions", body, "Idempotency-Key", key)
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte(encMarker)) {
			t.Fatalf("%s: %d %s", key, resp.StatusCode, b)
		}
		return b, resp.Header.Get("Idempotent-Replayed") + " " + resp.Header.Get("Content-Type")
	}
	noPlaintext := func(when string) {
		t.Helper()
		at := st.stored(t)
		if len(at) == 0 {
			t.Fatalf("%s: nothing stored", when)
		}
		for _, p := range []string{encMarker, base64.StdEncoding.EncodeToString([]byte(encMarker))[:16], "text/event-stream", "application/json"} {
			if bytes.Contains(at, []byte(p)) {
				t.Fatalf("%s: the bytes at rest contain %q", when, p)
			}
		}
		if st.live != nil {
			live := st.live(t)
			if len(live) == 0 {
				t.Fatalf("%s: no live stream entries in Redis", when)
			}
			for _, d := range live {
				if !seal.IsSealed([]byte(d)) || strings.Contains(d, encMarker) {
					t.Fatalf("%s: a live stream entry in Redis is not sealed: %q", when, d)
				}
			}
		}
	}

	// [k1]: both answers are recorded sealed.
	g := start(encKey1)
	plain1, h1 := ask(g, plainBody, "enc-plain")
	stream1, hs1 := ask(g, streamBody, "enc-stream")
	if h1 != "false application/json" || !strings.HasPrefix(hs1, "false text/event-stream") {
		t.Fatalf("first answers: %q %q", h1, hs1)
	}
	noPlaintext("[k1]")
	if b, h := ask(g, plainBody, "enc-plain"); !bytes.Equal(b, plain1) || h != "true application/json" {
		t.Fatalf("replay under [k1]: %q\n%s\nwant\n%s", h, b, plain1)
	}
	// The admin view opens the record as well.
	req, err := http.NewRequest("GET", g.URL+"/admin/tasks/enc-plain?tenant=team-a&body=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	view, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(view, []byte(encMarker)) || !bytes.Contains(view, []byte("application/json")) {
		t.Fatalf("GET /admin/tasks/enc-plain?body=1 = %d %s", resp.StatusCode, view)
	}
	calls := fake.Calls()
	logs := g.logs.String()
	g.stop(t)

	// [k2, k1]: the old records replay byte for byte, new ones use k2.
	g = start(encKey2, encKey1)
	if b, h := ask(g, plainBody, "enc-plain"); !bytes.Equal(b, plain1) || h != "true application/json" {
		t.Fatalf("replay under [k2, k1]: %q\n%s\nwant\n%s", h, b, plain1)
	}
	if b, h := ask(g, streamBody, "enc-stream"); !bytes.Equal(b, stream1) || !strings.HasPrefix(h, "true text/event-stream") {
		t.Fatalf("stream replay under [k2, k1]: %q\n%s\nwant\n%s", h, b, stream1)
	}
	if fake.Calls() != calls {
		t.Fatalf("replays called the upstream: %d calls, want %d", fake.Calls(), calls)
	}
	ask(g, chatBody("m", "after rotation", false), "enc-new")
	noPlaintext("[k2, k1]")
	if st.bodies != nil {
		ids := map[seal.ID]int{}
		for _, b := range st.bodies(t) {
			id, _ := seal.KeyOf(b)
			ids[id]++
		}
		if ids[keyID(t, encKey1)] != 2 || ids[keyID(t, encKey2)] != 1 {
			t.Fatalf("records by key id: %v; want two of k1 (%s) and one of k2 (%s)", ids, keyID(t, encKey1), keyID(t, encKey2))
		}
	}
	logs += g.logs.String()
	g.stop(t)

	// A wrong key, or none, is a start-up error naming the missing key
	// ids, never a replay of sealed bytes.
	for _, keys := range [][]string{{encKey3}, nil, {encKey2}} {
		cfg, err := config.Parse("test.yaml", []byte(testConfig(t, fake.URL, st.yaml(keys...))), nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := newApp(cfg, io.Discard)
		if err == nil {
			a.close()
			t.Fatalf("newApp with keys %v after [k2, k1] sealed records: started", keys)
		}
		want := "key id " + keyID(t, encKey1).String()
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("newApp with keys %v: %v; want an error with %q", keys, err, want)
		}
		for _, k := range []string{encKey1, encKey2, encKey3} {
			if strings.Contains(err.Error(), k) {
				t.Fatalf("the start-up error shows a key: %v", err)
			}
		}
	}
	for _, k := range []string{encKey1, encKey2} {
		if strings.Contains(logs, k) {
			t.Fatalf("the log shows an encryption key:\n%s", logs)
		}
	}
}

// Mid-rotation (README, step 3 on one node): node A seals with k2, node B
// still with k1, both open both. B joins A's running stream through
// Redis, whose events A sealed with k2, and gets the same text.
func TestEncryptionJoinAcrossNodesMidRotation(t *testing.T) {
	cl := newCluster(t)
	fake := startFake(t)
	b := upstreamtest.Behavior{Chunks: 30, Interval: 30 * time.Millisecond}
	fake.SetBehavior("m", b)
	store := func(keys ...string) string {
		y := strings.Replace(cl.yaml(t, ""), "store: {kind: postgres, url: ", "store:\n  kind: postgres\n  url: ", 1)
		return strings.Replace(y, "}\nlock:", "\n"+encKeysYAML(keys...)+"lock:", 1)
	}
	a := startGateway(t, testConfig(t, fake.URL, store(encKey2, encKey1)))
	bnode := startGateway(t, testConfig(t, fake.URL, store(encKey1, encKey2)))
	const key = "enc-join"
	resp := openStream(t, a.URL, sdkBody("m", key), "Idempotency-Key", key)
	r := &sseReader{br: bufio.NewReader(resp.Body)}
	var text1 strings.Builder
	for range 5 {
		ev, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		text1.WriteString(deltaText(ev))
	}
	var text2 string
	var err2 error
	var wg sync.WaitGroup
	wg.Go(func() { text2, err2 = sdkStreamText(t, bnode.URL, "m", key, key) })
	for {
		ev, err := r.next()
		text1.WriteString(deltaText(ev))
		if err != nil {
			break
		}
	}
	wg.Wait()
	want := upstreamtest.StreamText(b)
	if err2 != nil || text1.String() != want || text2 != want || fake.Calls() != 1 {
		t.Fatalf("texts (err %v, %d calls):\n1: %q\n2: %q\nwant %q", err2, fake.Calls(), text1.String(), text2, want)
	}
	// B read A's sealed events, not the record after a failed open.
	if m := scrape(t, bnode.URL); !strings.Contains(m, `gateway_dedupe_total{outcome="joined"} 1`) || strings.Contains(m, `store="live"`) {
		t.Fatalf("node B did not join through Redis, or could not open its events:\n%s", m)
	}
	// And B replays A's k2 record.
	replay := openStream(t, bnode.URL, sdkBody("m", key), "Idempotency-Key", key)
	if got, _ := io.ReadAll(replay.Body); replay.Header.Get("Idempotent-Replayed") != "true" || !bytes.Contains(got, []byte("[DONE]")) {
		t.Fatalf("replay on node B: %v\n%s", replay.Header, got)
	}
}
