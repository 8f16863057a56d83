package dedupe

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
)

func openTestEmbedded(t *testing.T, path string) *Embedded {
	t.Helper()
	s, err := OpenEmbedded(path)
	if err != nil {
		t.Fatalf("OpenEmbedded: %v", err)
	}
	t.Cleanup(func() { s.Close() }) // a second Close is harmless
	return s
}

func TestEmbeddedStore(t *testing.T) {
	testStoreSemantics(t, true, func(t *testing.T) Store {
		return openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	})
}

func TestEmbeddedStoreDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "nested", "gateway.db")
	s := openTestEmbedded(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat store file: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("store file mode %v, want 0600", mode)
	}
	testStoreDurable(t, s, func() Store { return openTestEmbedded(t, path) })
}

func TestEmbeddedStoreLocked(t *testing.T) {
	// In a synctest bubble bbolt's one-second wait for the lock costs no
	// real time.
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "gateway.db")
		openTestEmbedded(t, path)
		// bbolt's flock is per open file description, so a second open in
		// the same process conflicts like a second process would.
		_, err := OpenEmbedded(path)
		if err == nil || !strings.Contains(err.Error(), "locked by another process") {
			t.Fatalf("second OpenEmbedded: %v, want a locked-file error", err)
		}
	})
}

func TestEmbeddedStoreClosed(t *testing.T) {
	s := openTestEmbedded(t, filepath.Join(t.TempDir(), "gateway.db"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatalf("Ping after Close succeeded")
	}
}
