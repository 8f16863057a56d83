package dedupe

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/idemgw/gateway/dedupe/dedupetest"
)

// Issue 16, acceptance 1: a page of the task list of a 100,000-task
// store, in both stores. Each iteration reads the next page of 50 (the
// default), so the loop walks deep into the store; a filtered run reads
// one tenant's pages.
//
//	go test -run '^$' -bench BenchmarkList -benchtime 2000x ./dedupe

const benchListTasks = 100_000

func benchList(b *testing.B, s Store, q ListQuery) {
	ctx := context.Background()
	cursor := ""
	deepest := 0
	page := 0
	b.ResetTimer()
	for b.Loop() {
		q.Cursor = cursor
		p, err := s.List(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Tasks) == 0 {
			b.Fatal("an empty page")
		}
		page++
		deepest = max(deepest, page)
		if cursor = p.Next; cursor == "" {
			page = 0
		}
	}
	b.ReportMetric(float64(deepest), "deepest_page")
}

func BenchmarkListPostgres(b *testing.B) {
	p, err := OpenPostgres(context.Background(), dedupetest.PostgresURL(b), true)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	fillPostgres(b, p, benchListTasks)
	b.Run("all", func(b *testing.B) { benchList(b, p, ListQuery{}) })
	b.Run("tenant", func(b *testing.B) { benchList(b, p, ListQuery{Tenant: "tenant-3"}) })
	b.Run("route+status", func(b *testing.B) { benchList(b, p, ListQuery{Route: "writer", Status: StatusCompleted}) })
}

func BenchmarkListEmbedded(b *testing.B) {
	s, err := OpenEmbedded(filepath.Join(b.TempDir(), "gateway.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fillEmbedded(b, s, benchListTasks)
	b.Run("all", func(b *testing.B) { benchList(b, s, ListQuery{}) })
	b.Run("tenant", func(b *testing.B) { benchList(b, s, ListQuery{Tenant: "tenant-3"}) })
	b.Run("route+status", func(b *testing.B) { benchList(b, s, ListQuery{Route: "writer", Status: StatusCompleted}) })
}
