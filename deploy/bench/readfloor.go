package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"
	bolt "go.etcd.io/bbolt"

	"github.com/idemgw/gateway/dedupe"
)

// cmdReadFloor runs the replay floor: a server that answers every request
// with the stored response of one task, read with one indexed lookup from
// the same store the gateway replays from (a primary-key SELECT on
// Postgres, one bbolt Get on the embedded file). A replay can be no
// cheaper than this read and no cheaper than the floor proxy.
func cmdReadFloor(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("readfloor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	kind := fs.String("store", "postgres", "postgres or embedded")
	url := fs.String("url", "", "Postgres URL (store postgres)")
	path := fs.String("path", "", "embedded store file, closed by the gateway first (store embedded)")
	tenant := fs.String("tenant", "", "tenant of the task")
	key := fs.String("key", "", "Idempotency-Key of the task")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	keyHash := dedupe.HashKey(*tenant, *key)
	var read func(ctx context.Context) (storedResponse, error)
	switch *kind {
	case "postgres":
		pool, err := pgxpool.New(context.Background(), *url)
		if err != nil {
			fmt.Fprintln(stderr, "readfloor:", err)
			return 1
		}
		defer pool.Close()
		read = func(ctx context.Context) (storedResponse, error) { return readPostgres(ctx, pool, *tenant, keyHash) }
	case "embedded":
		db, err := openReadOnly(*path)
		if err != nil {
			fmt.Fprintln(stderr, "readfloor:", err)
			return 1
		}
		defer db.Close()
		read = func(context.Context) (storedResponse, error) { return readEmbedded(db, *tenant, keyHash) }
	default:
		fmt.Fprintf(stderr, "readfloor: -store must be postgres or embedded, got %q\n", *kind)
		return 2
	}
	// The row must be there and hold a response: a floor that answers
	// errors would be a floor of nothing.
	if r, err := read(context.Background()); err != nil || r.Status == 0 {
		fmt.Fprintf(stderr, "readfloor: cannot read the task's response (status %d): %v\n", r.Status, err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "readfloor:", err)
		return 1
	}
	fmt.Fprintf(stderr, "readfloor listening on http://%s\n", ln.Addr())
	return serveUntilSignal(ln, func(ctx *fasthttp.RequestCtx) {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := read(rctx)
		cancel()
		if err != nil {
			ctx.Error(err.Error(), fasthttp.StatusServiceUnavailable)
			return
		}
		ctx.SetStatusCode(r.Status)
		ctx.SetContentType(r.ContentType)
		ctx.SetBody(r.Body)
	}, stderr)
}

// storedResponse is the part of a task a replay sends.
type storedResponse struct {
	Status      int
	ContentType string
	Body        []byte
}

func readPostgres(ctx context.Context, pool *pgxpool.Pool, tenant, keyHash string) (storedResponse, error) {
	var r storedResponse
	var status *int32
	var ct *string
	err := pool.QueryRow(ctx, `SELECT resp_status, resp_content_type, resp_body FROM tasks WHERE tenant = $1 AND key_hash = $2`,
		tenant, keyHash).Scan(&status, &ct, &r.Body)
	if err != nil {
		return r, fmt.Errorf("cannot read the task: %w", err)
	}
	if status != nil {
		r.Status = int(*status)
	}
	if ct != nil {
		r.ContentType = *ct
	}
	return r, nil
}

// openReadOnly opens an embedded store file for reading; it waits a few
// seconds for the gateway that closed it to let go of its lock.
func openReadOnly(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("cannot open store file %q: %w", path, err)
	}
	return db, nil
}

// readEmbedded reads the task as the embedded store keeps it: bucket
// "tasks", key tenant + 0x00 + key hash, decoded by the store's own codec.
func readEmbedded(db *bolt.DB, tenant, keyHash string) (storedResponse, error) {
	var t dedupe.Task
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("tasks"))
		if b == nil {
			return errors.New("no tasks bucket")
		}
		v := b.Get(append(append([]byte(tenant), 0), keyHash...))
		if v == nil {
			return errors.New("no such task")
		}
		var err error
		t, err = dedupe.DecodeEmbeddedTask(v)
		return err
	})
	if err != nil {
		return storedResponse{}, fmt.Errorf("cannot read the task: %w", err)
	}
	if t.Response == nil {
		return storedResponse{}, errors.New("the task has no response")
	}
	return storedResponse{Status: t.Response.Status, ContentType: t.Response.ContentType, Body: t.Response.Body}, nil
}
