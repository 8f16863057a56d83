package dedupe

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// Every page of the list is an index range scan in the list's order:
// Postgres walks tasks_created_idx (or, for one tenant,
// tasks_tenant_created_idx) backwards and stops at the page's end, with
// no sort and no scan of the table, however deep the cursor.
func TestPostgresListPlanUsesIndex(t *testing.T) {
	p := openTestPostgres(t, dedupetest.PostgresURL(t), true)
	fillPostgres(t, p, 20000)
	ctx := context.Background()
	deep, err := p.List(ctx, ListQuery{Limit: 500})
	if err != nil || deep.Next == "" {
		t.Fatalf("first page: %v, next %q", err, deep.Next)
	}
	// A tenant with 1% of the tasks, which its own index finds fastest.
	if _, err := p.pool.Exec(ctx, `INSERT INTO tasks (tenant, key_hash, fingerprint, status)
		SELECT 'rare', md5(i::text), 'fp', 'processing' FROM generate_series(1, 2000) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pool.Exec(ctx, `ANALYZE tasks`); err != nil {
		t.Fatal(err)
	}
	f := func(q ListQuery, indexes ...string) {
		t.Helper()
		sql, args, err := listPostgresSQL(q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []byte
		if err := p.pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&plan); err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		var tree any
		_ = json.Unmarshal(plan, &tree)
		nodes := map[string]bool{}
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				if r, _ := x["Relation Name"].(string); r == "tasks" {
					nodes[x["Node Type"].(string)+" "+str(x["Index Name"])+" "+str(x["Scan Direction"])] = true
				}
				if x["Node Type"] == "Sort" {
					nodes["Sort"] = true
				}
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(tree)
		for _, index := range indexes {
			if want := "Index Scan " + index + " Backward"; nodes[want] && len(nodes) == 1 {
				return
			}
		}
		t.Fatalf("query %+v: plan reads tasks by %v, want a backward index scan of one of %v and nothing else\n%s", q, keys(nodes), indexes, plan)
	}
	f(ListQuery{}, "tasks_created_idx")
	f(ListQuery{Cursor: deep.Next}, "tasks_created_idx")
	f(ListQuery{Cursor: deep.Next, Status: StatusCompleted, Route: "writer"}, "tasks_created_idx")
	// A tenant with a tenth of the tasks: either index finds a page in
	// a few rows; the planner picks by the statistics.
	f(ListQuery{Tenant: "tenant-3"}, "tasks_created_idx", "tasks_tenant_created_idx")
	f(ListQuery{Tenant: "rare"}, "tasks_tenant_created_idx")
	f(ListQuery{Tenant: "rare", Cursor: deep.Next, Limit: 10}, "tasks_tenant_created_idx")
}

func str(v any) string { s, _ := v.(string); return s }

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ", ")
}
