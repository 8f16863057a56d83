package dedupe

import (
	"context"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Large stores for the list's plan test and benchmarks, filled in bulk
// rather than through Begin: n tasks over 10 tenants and two routes, one
// a millisecond older than the next, each with one attempt.

func fillPostgres(t testing.TB, p *Postgres, n int) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO tasks (tenant, key_hash, fingerprint, status, fence, created_at, updated_at, started_at,
			expires_at, model, resp_status, resp_content_type, resp_body)
		SELECT 'tenant-' || (i %% 10), md5(i::text), 'fp', 'completed', 1, now() - i * interval '1 millisecond', now(), now(),
			now() + interval '1 hour', CASE WHEN i %% 2 = 0 THEN 'writer' ELSE 'coder' END, 200, 'application/json', '\x7b7d'
		FROM generate_series(1, %d) i`, n),
		`INSERT INTO attempts (task_id, n, fence, provider, model, outcome, started_at)
		SELECT id, 1, 1, 'p1', 'm1', 'success', created_at FROM tasks`,
		`ANALYZE tasks`, `ANALYZE attempts`,
	} {
		if _, err := p.pool.Exec(ctx, q); err != nil {
			t.Fatalf("cannot fill the store: %v", err)
		}
	}
}

func fillEmbedded(t testing.TB, s *Embedded, n int) {
	t.Helper()
	now := nowLocal()
	const batch = 10000
	for from := 0; from < n; from += batch {
		err := s.db.Update(func(tx *bolt.Tx) error {
			e := newEmbeddedTx(tx)
			for i := from; i < min(from+batch, n); i++ {
				at := now.Add(-time.Duration(i) * time.Millisecond)
				model := "coder"
				if i%2 == 0 {
					model = "writer"
				}
				task := Task{Tenant: fmt.Sprintf("tenant-%d", i%10), KeyHash: fmt.Sprintf("%032x", i), Fingerprint: "fp",
					Status: StatusCompleted, Fence: 1, Model: model, CreatedAt: at, UpdatedAt: at, StartedAt: at,
					ExpiresAt: now.Add(time.Hour), Response: &Response{Status: 200, ContentType: "application/json", Body: []byte("{}")}}
				key := boltTaskKey(task.Tenant, task.KeyHash)
				rec := boltRecord{Task: task, Attempts: []Attempt{{N: 1, Fence: 1, Provider: "p1", Model: "m1", Outcome: "success", StartedAt: at}}}
				if err := e.put(key, nil, &rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("cannot fill the store: %v", err)
		}
	}
}
