// Package dedupetest gives tests real Postgres databases and Redis key
// spaces of their own, named by GATEWAY_TEST_DATABASE_URL and
// GATEWAY_TEST_REDIS_URL. Without a variable the test is skipped, except
// in CI (CI=true), where a missing service is a failure.
package dedupetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"github.com/redis/go-redis/v9"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables naming the test services.
const (
	DatabaseURLEnv = "GATEWAY_TEST_DATABASE_URL"
	RedisURLEnv    = "GATEWAY_TEST_REDIS_URL"
)

// requireEnv returns the variable's value, or skips (fails in CI) the test.
func requireEnv(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set; CI must provide the service", name)
	}
	t.Skipf("%s is not set; set it to run this test against a real service", name)
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// PostgresURL creates a fresh database gwtest_<random> on the server named
// by GATEWAY_TEST_DATABASE_URL and returns its URL. The database is
// dropped WITH (FORCE) when the test ends, even if connections remain.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := requireEnv(t, DatabaseURLEnv)
	name := "gwtest_" + randomHex(8)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("cannot connect to %s: %v", DatabaseURLEnv, err)
	}
	defer conn.Close(ctx)
	// The name is ours (hex), so quoting it as an identifier is enough.
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("cannot create database %q: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("cannot connect to drop database %q: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("cannot drop database %q: %v", name, err)
		}
	})
	return withDatabase(t, admin, name)
}

// withDatabase returns the connection string admin pointing at database name.
func withDatabase(t testing.TB, admin, name string) string {
	t.Helper()
	if strings.HasPrefix(admin, "postgres://") || strings.HasPrefix(admin, "postgresql://") {
		u, err := url.Parse(admin)
		if err != nil {
			t.Fatalf("cannot parse %s: %v", DatabaseURLEnv, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String()
	}
	// keyword=value form: a later keyword overrides an earlier one.
	return admin + " dbname=" + name
}

// RedisURL returns GATEWAY_TEST_REDIS_URL, or skips (fails in CI) the test.
// Tests sharing the server keep apart with KeyPrefix.
func RedisURL(t testing.TB) string {
	t.Helper()
	return requireEnv(t, RedisURLEnv)
}

// KeyPrefix returns a Redis key prefix unique to this call, like
// "gwtest:<random>:".
// The keys under it are deleted when the test ends.
func KeyPrefix(t testing.TB) string {
	t.Helper()
	prefix := "gwtest:" + randomHex(8) + ":"
	url := os.Getenv(RedisURLEnv)
	if url == "" {
		return prefix
	}
	t.Cleanup(func() {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		client := redis.NewClient(opts)
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 200).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return prefix
}
