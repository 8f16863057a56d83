package dedupe

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/idemgw/gateway/dedupe/dedupetest"
	"github.com/idemgw/gateway/dedupe/seal"
)

// Encryption at rest (issue 13): SealStore over both record stores and
// sealed live streams over real Redis.

func sealTestKey(t *testing.T, name string) seal.Key {
	t.Helper()
	k := seal.Key{Name: name, Secret: make([]byte, seal.KeySize)}
	if _, err := rand.Read(k.Secret); err != nil {
		t.Fatal(err)
	}
	return k
}

func sealTestRing(t *testing.T, keys ...seal.Key) *seal.Keyring {
	t.Helper()
	ring, err := seal.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// The semantics suite passes unchanged through SealStore.
func TestSealedEmbeddedStore(t *testing.T) {
	ring := sealTestRing(t, sealTestKey(t, "k1"))
	testStoreSemantics(t, true, func(t *testing.T) Store {
		return SealStore(openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db")), ring)
	})
}

func TestSealedPostgresStore(t *testing.T) {
	ring := sealTestRing(t, sealTestKey(t, "k1"))
	testStoreSemantics(t, false, func(t *testing.T) Store {
		return SealStore(openTestPostgres(t, dedupetest.PostgresURL(t), true), ring)
	})
}

// atRest is what a test needs of one store kind beyond the Store API.
type atRest struct {
	raw Store
	// bytes returns everything the store keeps on disk (or in its table).
	bytes func(t *testing.T) []byte
	// moveResponse copies the stored response of one task over another's.
	moveResponse func(t *testing.T, fromTenant, fromKey, toTenant, toKey string)
	// ageSealKeys moves every key record's written_at back by d.
	ageSealKeys func(t *testing.T, d time.Duration)
}

func TestSealAtRestPostgres(t *testing.T) {
	s := openTestPostgres(t, dedupetest.PostgresURL(t), true)
	ctx := context.Background()
	testSealAtRest(t, atRest{
		raw: s,
		bytes: func(t *testing.T) []byte {
			// The table's columns as Postgres returns them, and the
			// heap and TOAST pages as stored (a long body is TOASTed).
			var out []byte
			rows, err := s.pool.Query(ctx, `SELECT coalesce(resp_content_type, ''), coalesce(resp_body, ''::bytea), coalesce(error, '') FROM tasks`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var ct, errText string
				var body []byte
				if err := rows.Scan(&ct, &body, &errText); err != nil {
					t.Fatal(err)
				}
				out = append(append(append(out, ct...), body...), errText...)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			for _, rel := range []string{`'tasks'::regclass`, `(SELECT reltoastrelid FROM pg_class WHERE oid = 'tasks'::regclass)`} {
				var pages int
				if err := s.pool.QueryRow(ctx, `SELECT pg_relation_size(`+rel+`) / 8192`).Scan(&pages); err != nil {
					t.Fatal(err)
				}
				// get_raw_page needs pageinspect (and superuser); without
				// it the columns above are the check.
				for p := range pages {
					var page []byte
					if err := s.pool.QueryRow(ctx, `SELECT get_raw_page(`+rel+`::regclass::text, $1)`, p).Scan(&page); err != nil {
						break
					}
					out = append(out, page...)
				}
			}
			return out
		},
		moveResponse: func(t *testing.T, fromTenant, fromKey, toTenant, toKey string) {
			_, err := s.pool.Exec(ctx, `UPDATE tasks SET (resp_status, resp_content_type, resp_body) =
				(SELECT resp_status, resp_content_type, resp_body FROM tasks WHERE tenant = $1 AND key_hash = $2)
				WHERE tenant = $3 AND key_hash = $4`, fromTenant, fromKey, toTenant, toKey)
			if err != nil {
				t.Fatal(err)
			}
		},
		ageSealKeys: func(t *testing.T, d time.Duration) {
			if _, err := s.pool.Exec(ctx, `UPDATE seal_keys SET written_at = written_at - $1 * interval '1 microsecond'`, micros(d)); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestSealAtRestEmbedded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	s := openTestEmbedded(t, path)
	update := func(t *testing.T, fn func(tx *bolt.Tx) error) {
		t.Helper()
		if err := s.db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	testSealAtRest(t, atRest{
		raw: s,
		bytes: func(t *testing.T) []byte {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		moveResponse: func(t *testing.T, fromTenant, fromKey, toTenant, toKey string) {
			update(t, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketTasks))
				var from, to boltRecord
				if err := decodeRecord(b.Get(boltTaskKey(fromTenant, fromKey)), &from, true); err != nil {
					return err
				}
				if err := decodeRecord(b.Get(boltTaskKey(toTenant, toKey)), &to, true); err != nil {
					return err
				}
				to.Response = from.Response
				return b.Put(boltTaskKey(toTenant, toKey), encodeRecord(nil, &to))
			})
		},
		ageSealKeys: func(t *testing.T, d time.Duration) {
			update(t, func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(bucketSealKeys))
				return b.ForEach(func(id, v []byte) error {
					var k sealKey
					if err := json.Unmarshal(v, &k); err != nil {
						return err
					}
					k.WrittenAt = k.WrittenAt.Add(-d)
					nv, err := json.Marshal(k)
					if err != nil {
						return err
					}
					return b.Put(id, nv)
				})
			})
		},
	})
}

// containsPlain reports whether raw holds plain as it is or inside the
// base64 that the embedded store's JSON gives a []byte, at any of the
// three alignments (the groups that mix in other bytes are left out).
func containsPlain(raw []byte, plain string) bool {
	if bytes.Contains(raw, []byte(plain)) {
		return true
	}
	for off := range 3 {
		e := base64.StdEncoding.EncodeToString(append(make([]byte, off), plain...))
		start := 0
		if off > 0 {
			start = 4
		}
		if bytes.Contains(raw, []byte(e[start:len(e)-4])) {
			return true
		}
	}
	return false
}

func testSealAtRest(t *testing.T, st atRest) {
	ctx := context.Background()
	k1, k2 := sealTestKey(t, "k1"), sealTestKey(t, "k2")
	ring1, ring21 := sealTestRing(t, k1), sealTestRing(t, k2, k1)
	const keep = time.Hour
	raw := st.raw
	complete := func(s Store, tenant, key string, r Response) {
		t.Helper()
		task := storeBegin(t, s, storeReq(tenant, key, "fp-"+key), VerdictLeader)
		storeComplete(t, s, tenant, key, task.Fence, Completion{Response: r, TTL: time.Hour, Generation: task.CreatedAt})
	}
	replays := func(s Store, tenant, key string, want Response) {
		t.Helper()
		got, _ := storeGet(t, s, tenant, key)
		if got.Response == nil || got.Response.Status != want.Status || got.Response.ContentType != want.ContentType || !bytes.Equal(got.Response.Body, want.Body) {
			t.Fatalf("%s/%s replays %+v, want %+v", tenant, key, got.Response, want)
		}
		// Begin's replay path opens it too.
		res, err := s.Begin(ctx, storeReq(tenant, key, "fp-"+key))
		if err != nil || res.Verdict != VerdictCompleted || !bytes.Equal(res.Task.Response.Body, want.Body) || res.Task.Response.ContentType != want.ContentType {
			t.Fatalf("Begin(%s/%s) = %v %+v, want a replay of %q", tenant, key, err, res.Task.Response, want.Body)
		}
	}
	writtenWith := func(tenant, key string, k seal.Key) {
		t.Helper()
		got, _ := storeGet(t, raw, tenant, key)
		if id, ok := seal.KeyOf(got.Response.Body); !ok || id != seal.IDOf(k.Secret) || got.Response.ContentType != "" {
			t.Fatalf("%s/%s at rest: sealed %v with key id %s, content type %q; want sealed with %s (%s) and no content type", tenant, key, ok, id, got.Response.ContentType, k.Name, seal.IDOf(k.Secret))
		}
	}

	// Before any key: a record written in plaintext, as by an older
	// version. No key record exists, so any keyring may start.
	legacy := Response{Status: 200, ContentType: "application/json", Body: []byte(`{"answer":"LEGACY-PLAINTEXT-7c1f"}`)}
	complete(raw, "tenant-a", "legacy", legacy)
	if err := CheckSealKeys(ctx, raw, nil, keep); err != nil {
		t.Fatalf("CheckSealKeys without keys on a plaintext store: %v", err)
	}

	// Keys [k1]: the start-up check records k1; records are sealed.
	if err := CheckSealKeys(ctx, raw, ring1, keep); err != nil {
		t.Fatalf("CheckSealKeys [k1]: %v", err)
	}
	s1 := SealStore(raw, ring1)
	answer := Response{Status: 200, ContentType: "application/json; charset=utf-8", Body: []byte(`{"choices":[{"message":{"content":"SEALED-ANSWER-91ab"}}]}`)}
	stream := Response{Status: 200, ContentType: "text/event-stream", Body: []byte("data: {\"delta\":\"SEALED-STREAM-2f0d\"}\n\ndata: [DONE]\n\n")}
	big := Response{Status: 200, ContentType: "application/json", Body: []byte(`{"big":"` + strings.Repeat("SEALED-BIG-", 20000) + `"}`)}
	complete(s1, "tenant-a", "k-answer", answer)
	complete(s1, "tenant-a", "k-stream", stream)
	complete(s1, "tenant-a", "k-big", big)
	replays(s1, "tenant-a", "k-answer", answer)
	replays(s1, "tenant-a", "k-stream", stream)
	replays(s1, "tenant-a", "k-big", big)
	// Plaintext records written before the key still read, as they are
	// (they are not re-sealed; they expire with key_ttl).
	replays(s1, "tenant-a", "legacy", legacy)
	writtenWith("tenant-a", "k-answer", k1)

	at := st.bytes(t)
	if !containsPlain(at, "LEGACY-PLAINTEXT-7c1f") {
		t.Fatal("the raw bytes do not show the plaintext record: the check below would prove nothing")
	}
	for _, p := range []string{"SEALED-ANSWER-91ab", "SEALED-STREAM-2f0d", "SEALED-BIG-SEALED-BIG-", "charset=utf-8", "text/event-stream"} {
		if containsPlain(at, p) {
			t.Errorf("the bytes at rest contain %q", p)
		}
	}

	// A sealed response moved to another row does not open there: not
	// for another tenant, not for another key of the same tenant.
	complete(s1, "tenant-b", "k-answer", Response{Status: 200, Body: []byte("b's own")})
	complete(s1, "tenant-a", "k-other", Response{Status: 200, Body: []byte("a's other")})
	st.moveResponse(t, "tenant-a", "k-answer", "tenant-b", "k-answer")
	st.moveResponse(t, "tenant-a", "k-answer", "tenant-a", "k-other")
	for _, row := range [][2]string{{"tenant-b", "k-answer"}, {"tenant-a", "k-other"}} {
		if _, _, err := s1.Get(ctx, row[0], row[1]); !errors.Is(err, ErrSealed) || !errors.Is(err, seal.ErrCorrupt) {
			t.Errorf("Get of a response moved to %s/%s: %v, want ErrSealed", row[0], row[1], err)
		}
		if _, err := s1.Begin(ctx, storeReq(row[0], row[1], "fp-"+row[1])); !errors.Is(err, ErrSealed) {
			t.Errorf("Begin of a response moved to %s/%s: %v, want ErrSealed", row[0], row[1], err)
		}
	}

	// Without the key: the start-up check refuses, naming the key id,
	// and a store that started anyway refuses the record instead of
	// replaying sealed bytes.
	id1 := seal.IDOf(k1.Secret).String()
	for name, ring := range map[string]*seal.Keyring{"no keys": nil, "[k2]": sealTestRing(t, k2), "[other k1]": sealTestRing(t, seal.Key{Name: "k1", Secret: k2.Secret})} {
		err := CheckSealKeys(ctx, raw, ring, keep)
		if err == nil || !strings.Contains(err.Error(), "key id "+id1) {
			t.Errorf("CheckSealKeys %s after k1 sealed records: %v, want an error naming key id %s", name, err, id1)
		}
		if _, _, err := SealStore(raw, ring).Get(ctx, "tenant-a", "k-answer"); !errors.Is(err, ErrSealed) {
			t.Errorf("Get with %s: %v, want ErrSealed", name, err)
		}
	}
	if err := CheckSealKeys(ctx, raw, nil, keep); err == nil || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(k1.Secret)) {
		t.Errorf("CheckSealKeys error shows the key: %v", err)
	}

	// Rotation: [k2, k1] replays k1's records and seals new ones with k2.
	if err := CheckSealKeys(ctx, raw, ring21, keep); err != nil {
		t.Fatalf("CheckSealKeys [k2, k1]: %v", err)
	}
	s21 := SealStore(raw, ring21)
	replays(s21, "tenant-a", "k-answer", answer)
	replays(s21, "tenant-a", "k-stream", stream)
	replays(s21, "tenant-a", "legacy", legacy)
	fresh := Response{Status: 201, ContentType: "application/json", Body: []byte(`{"answer":"AFTER-ROTATION"}`)}
	complete(s21, "tenant-a", "k-new", fresh)
	writtenWith("tenant-a", "k-new", k2)
	writtenWith("tenant-a", "k-answer", k1)
	replays(s21, "tenant-a", "k-new", fresh)

	// k1 may go once its records can no longer be live: until then,
	// [k2] alone is refused.
	if err := CheckSealKeys(ctx, raw, sealTestRing(t, k2), keep); err == nil || !strings.Contains(err.Error(), "key id "+id1) {
		t.Fatalf("CheckSealKeys [k2] while k1's records may live: %v", err)
	}
	st.ageSealKeys(t, keep+time.Minute)
	if err := CheckSealKeys(ctx, raw, sealTestRing(t, k2), keep); err != nil {
		t.Fatalf("CheckSealKeys [k2] after k1's records expired: %v", err)
	}
	// k2 was just refreshed, so it is required again.
	if err := CheckSealKeys(ctx, raw, sealTestRing(t, k1), keep); err == nil || !strings.Contains(err.Error(), seal.IDOf(k2.Secret).String()) {
		t.Fatalf("CheckSealKeys [k1] after k2 sealed: %v", err)
	}
}

// A key record whose canary does not open with the configured key of the
// same id (altered in the store) is a start-up error too.
func TestSealKeyCanaryAltered(t *testing.T) {
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	ctx := context.Background()
	ring := sealTestRing(t, sealTestKey(t, "k1"))
	if err := CheckSealKeys(ctx, s, ring, time.Hour); err != nil {
		t.Fatal(err)
	}
	ks, err := s.sealKeys(ctx)
	if err != nil || len(ks) != 1 {
		t.Fatalf("sealKeys = %v, %v", ks, err)
	}
	ks[0].Canary[len(ks[0].Canary)-1] ^= 1
	if err := s.putSealKey(ctx, ks[0]); err != nil {
		t.Fatal(err)
	}
	if err := CheckSealKeys(ctx, SealStore(s, ring), ring, time.Hour); err == nil || !strings.Contains(err.Error(), "does not open the store's canary") {
		t.Fatalf("CheckSealKeys with an altered canary: %v", err)
	}
}

func TestSealedLiveRedis(t *testing.T) {
	client, prefix := redisForTest(t)
	ctx := context.Background()
	k1 := sealTestKey(t, "k1")
	sealed := sealedLive{Live: NewRedis(client, prefix), keys: sealTestRing(t, k1)}
	plain := sealedLive{Live: NewRedis(client, prefix)}
	events := []string{`data: {"delta":"LIVE-SECRET-one"}`, `data: {"delta":"LIVE-SECRET-two"}`}
	follow := func(l Live, name string, from int) ([]string, error) {
		t.Helper()
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		ch, errf := l.Follow(fctx, name, from, 5*time.Second)
		var got []string
		for ev := range ch {
			if ev.End {
				got = append(got, "END:"+ev.Err)
				break
			}
			got = append(got, string(ev.Data))
		}
		return got, errf()
	}

	name := "hash-a:gen:1"
	for _, e := range events {
		if err := sealed.Append(ctx, name, LiveEvent{Data: []byte(e)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sealed.Append(ctx, name, LiveEvent{End: true, Err: "too large"}); err != nil {
		t.Fatal(err)
	}
	// What Redis holds: sealed data fields.
	msgs, err := client.XRange(ctx, prefix+"live:"+name, "-", "+").Result()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("XRANGE: %v, %d entries", err, len(msgs))
	}
	for _, m := range msgs[:2] {
		d, _ := m.Values["d"].(string)
		if !seal.IsSealed([]byte(d)) || strings.Contains(d, "LIVE-SECRET") {
			t.Fatalf("Redis holds %q, want a sealed value", d)
		}
	}
	got, err := follow(sealed, name, 0)
	if err != nil || strings.Join(got, "|") != events[0]+"|"+events[1]+"|END:too large" {
		t.Fatalf("Follow = %q, %v", got, err)
	}
	if got, err := follow(sealed, name, 1); err != nil || len(got) != 2 || got[0] != events[1] {
		t.Fatalf("Follow from 1 = %q, %v", got, err)
	}

	// Without the key, or with another, nothing sealed comes out.
	for label, l := range map[string]Live{"no keys": plain, "[k2]": sealedLive{Live: NewRedis(client, prefix), keys: sealTestRing(t, sealTestKey(t, "k2"))}} {
		got, err := follow(l, name, 0)
		if !errors.Is(err, ErrSealed) || len(got) != 0 {
			t.Errorf("Follow with %s = %q, %v; want no events and ErrSealed", label, got, err)
		}
	}
	// Entries copied into another task's stream do not open there.
	other := "hash-b:gen:1"
	for _, m := range msgs {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "live:" + other, Values: m.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := follow(sealed, other, 0); !errors.Is(err, ErrSealed) || len(got) != 0 {
		t.Errorf("Follow of entries copied to another stream = %q, %v; want ErrSealed", got, err)
	}
	// A node without keys (a rolling start) writes plaintext, which a
	// node with keys reads as it is.
	name = "hash-c:gen:1"
	if err := plain.Append(ctx, name, LiveEvent{Data: []byte("data: plain")}); err != nil {
		t.Fatal(err)
	}
	if err := plain.Append(ctx, name, LiveEvent{End: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := follow(sealed, name, 0); err != nil || strings.Join(got, "|") != "data: plain|END:" {
		t.Fatalf("Follow of plaintext entries = %q, %v", got, err)
	}
}

// store.migrate: manual before `gateway migrate`: without keys the start
// goes on as before; with keys it fails, saying to migrate.
func TestSealKeysWithoutSchema(t *testing.T) {
	s := openTestPostgres(t, dedupetest.PostgresURL(t), false)
	ctx := context.Background()
	if err := CheckSealKeys(ctx, s, nil, time.Hour); err != nil {
		t.Fatalf("CheckSealKeys without keys or schema: %v", err)
	}
	err := CheckSealKeys(ctx, s, sealTestRing(t, sealTestKey(t, "k1")), time.Hour)
	if err == nil || !strings.Contains(err.Error(), "run `gateway migrate`") {
		t.Fatalf("CheckSealKeys with keys and no schema: %v", err)
	}
}
