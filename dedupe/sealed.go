package dedupe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/idemgw/gateway/dedupe/seal"
)

// ErrSealed wraps a recorded value that cannot be opened: sealed with a
// key that is not configured, or altered. It is a store error (the request
// gets 503), never a replay of the sealed bytes. CheckSealKeys finds a
// missing key at start-up, so requests should not meet it.
var ErrSealed = errors.New("dedupe: cannot open a sealed record")

// SealStore returns store with encryption at rest (issue 13): Complete
// seals the response's content type and body with the keyring's first key,
// bound to the task's tenant and key hash; Begin and Get open them again.
// Records written before a key was configured are read as they are
// (plaintext, until they expire). Everything else (keys, fingerprints,
// states, usage, errors and the attempt ledger) stays plaintext for the
// admin views and the reaper. With an empty keyring nothing is sealed and
// a sealed record is an ErrSealed error.
func SealStore(store Store, keys *seal.Keyring) Store {
	return &sealedStore{Store: store, keys: keys}
}

type sealedStore struct {
	Store
	keys *seal.Keyring
}

// recordBinding binds a sealed response to its row.
func recordBinding(tenant, keyHash string) []byte {
	return seal.Binding("idemgw record v1", tenant, keyHash)
}

// sealResponse seals r's content type and body into one value: content
// type length (uvarint), content type, body. The stored content type is
// left empty.
func sealResponse(keys *seal.Keyring, tenant, keyHash string, r Response) Response {
	plain := make([]byte, 0, binary.MaxVarintLen64+len(r.ContentType)+len(r.Body))
	plain = binary.AppendUvarint(plain, uint64(len(r.ContentType)))
	plain = append(plain, r.ContentType...)
	plain = append(plain, r.Body...)
	sealed := keys.Seal(make([]byte, 0, seal.Overhead+len(plain)), plain, recordBinding(tenant, keyHash))
	return Response{Status: r.Status, Body: sealed}
}

// openResponse is the inverse of sealResponse; a response that is not
// sealed is returned as it is.
func openResponse(keys *seal.Keyring, tenant, keyHash string, r *Response) error {
	if r == nil || !seal.IsSealed(r.Body) {
		return nil
	}
	plain, err := keys.Open(r.Body, recordBinding(tenant, keyHash))
	if err != nil {
		return fmt.Errorf("%w of tenant %q: %w", ErrSealed, tenant, err)
	}
	n, w := binary.Uvarint(plain)
	if w <= 0 || n > uint64(len(plain)-w) {
		return fmt.Errorf("%w of tenant %q: bad content type length", ErrSealed, tenant)
	}
	r.ContentType = string(plain[w : w+int(n)])
	r.Body = plain[w+int(n):]
	return nil
}

func (s *sealedStore) Begin(ctx context.Context, req BeginRequest) (BeginResult, error) {
	res, err := s.Store.Begin(ctx, req)
	if err != nil {
		return res, err
	}
	if err := openResponse(s.keys, res.Task.Tenant, res.Task.KeyHash, res.Task.Response); err != nil {
		return BeginResult{}, err
	}
	return res, nil
}

func (s *sealedStore) Complete(ctx context.Context, tenant, keyHash string, fence int64, c Completion) error {
	if s.keys.Enabled() && !c.TooLarge {
		c.Response = sealResponse(s.keys, tenant, keyHash, c.Response)
	}
	return s.Store.Complete(ctx, tenant, keyHash, fence, c)
}

func (s *sealedStore) Get(ctx context.Context, tenant, keyHash string) (Task, []Attempt, error) {
	t, attempts, err := s.Store.Get(ctx, tenant, keyHash)
	if err != nil {
		return t, attempts, err
	}
	if err := openResponse(s.keys, t.Tenant, t.KeyHash, t.Response); err != nil {
		return Task{}, nil, err
	}
	return t, attempts, nil
}

func (s *sealedStore) Lookup(ctx context.Context, tenant, keyHash string) (Task, error) {
	t, err := s.Store.Lookup(ctx, tenant, keyHash)
	if err != nil {
		return t, err
	}
	if err := openResponse(s.keys, t.Tenant, t.KeyHash, t.Response); err != nil {
		return Task{}, err
	}
	return t, nil
}

// sealedLive seals the events of live streams kept in Redis, each bound
// to its stream's name (key hash, generation and fence; the key hash is
// derived from the tenant, see HashKey). End markers and their error
// texts are the gateway's own words and stay plaintext.
type sealedLive struct {
	Live
	keys *seal.Keyring
}

func liveBinding(name string) []byte {
	return seal.Binding("idemgw live v1", name)
}

func (l sealedLive) Append(ctx context.Context, name string, ev LiveEvent) error {
	if l.keys.Enabled() && len(ev.Data) > 0 {
		ev.Data = sealLive(l.keys, name, ev.Data)
	}
	return l.Live.Append(ctx, name, ev)
}

// sealLive seals one event of the named live stream.
func sealLive(keys *seal.Keyring, name string, data []byte) []byte {
	return keys.Seal(make([]byte, 0, seal.Overhead+len(data)), data, liveBinding(name))
}

// Follow opens each event. One that does not open ends the follow with an
// ErrSealed error: Join then finishes from the record, which the store
// opens or refuses, so the joiner never gets the sealed bytes.
func (l sealedLive) Follow(ctx context.Context, name string, from int, idle time.Duration) (<-chan LiveEvent, func() error) {
	fctx, cancel := context.WithCancel(ctx)
	in, inErr := l.Live.Follow(fctx, name, from, idle)
	out := make(chan LiveEvent, liveFollowBuffer)
	res := &followResult{}
	ad := liveBinding(name)
	go func() {
		defer close(out)
		defer cancel()
		for ev := range in {
			if seal.IsSealed(ev.Data) {
				plain, err := l.keys.Open(ev.Data, ad)
				if err != nil {
					cancel()
					for range in { // let the inner follower end
					}
					res.set(fmt.Errorf("%w: live stream %q: %w", ErrSealed, name, err))
					return
				}
				ev.Data = plain
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				cancel()
				for range in {
				}
				res.set(inErr())
				return
			}
		}
		res.set(inErr())
	}()
	return out, res.get
}
