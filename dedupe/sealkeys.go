package dedupe

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	bolt "go.etcd.io/bbolt"

	"github.com/idemgw/gateway/dedupe/seal"
)

// SealKeyRefresh is how often a gateway marks its write key as still in
// use (RefreshSealKey).
const SealKeyRefresh = 10 * time.Minute

// sealKey is the record of one key that has sealed records: its id (hex),
// a canary sealed with it, and when a gateway last sealed with it.
type sealKey struct {
	ID        string    `json:"-"`
	Canary    []byte    `json:"canary"`
	WrittenAt time.Time `json:"written_at"`
}

// sealKeyStore is what both record stores keep for CheckSealKeys.
type sealKeyStore interface {
	sealKeys(ctx context.Context) ([]sealKey, error)
	putSealKey(ctx context.Context, k sealKey) error
}

var canaryPlain = []byte("idemgw canary: this store is sealed with this key")

func canaryBinding(id string) []byte { return seal.Binding("idemgw canary v1", id) }

// CheckSealKeys is the start-up check of store.encryption_keys against the
// record store (the raw store, not SealStore's): every key that sealed
// records still live must be configured, and must be the same key. Keep
// is how long a record may outlive its sealing (key_ttl plus
// max_processing plus SealKeyRefresh): a key last used for writing longer
// ago has no live records left and may be dropped from the config. Then
// it records the write key as in use. Records written without a key need
// nothing: they are read as plaintext.
func CheckSealKeys(ctx context.Context, store Store, keys *seal.Keyring, keep time.Duration) error {
	ks, ok := unsealed(store).(sealKeyStore)
	if !ok {
		return fmt.Errorf("cannot check encryption keys: store %T keeps no key records", store)
	}
	recorded, err := ks.sealKeys(ctx)
	if err != nil {
		return fmt.Errorf("cannot check encryption keys: %w", err)
	}
	now := time.Now()
	var problems []error
	for _, r := range recorded {
		var id seal.ID
		if b, err := hex.DecodeString(r.ID); err != nil || copy(id[:], b) != len(id) || len(b) != len(id) {
			return fmt.Errorf("cannot check encryption keys: bad key id %q in the store", r.ID)
		}
		name, ok := keys.Has(id)
		switch {
		case !ok && now.Before(r.WrittenAt.Add(keep)):
			problems = append(problems, fmt.Errorf("records sealed with a key that is not in store.encryption_keys (key id %s, last used %s) may live until %s: configure that key (after the one that encrypts), or wait until then; configured: %s",
				r.ID, r.WrittenAt.UTC().Format(time.RFC3339), r.WrittenAt.Add(keep).UTC().Format(time.RFC3339), describeKeys(keys)))
		case !ok:
			// Every record sealed with it has expired.
		default:
			if _, err := keys.Open(r.Canary, canaryBinding(r.ID)); err != nil {
				problems = append(problems, fmt.Errorf("store.encryption_keys %q does not open the store's canary of key id %s: %w", name, r.ID, err))
			}
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("cannot start with these encryption keys: %w", err)
	}
	return RefreshSealKey(ctx, store, keys)
}

// RefreshSealKey records that this gateway seals with its write key now,
// with a canary sealed by it; without keys it does nothing. A running
// gateway calls it every SealKeyRefresh, so that a node still sealing
// with an old key keeps that key required.
func RefreshSealKey(ctx context.Context, store Store, keys *seal.Keyring) error {
	_, id, ok := keys.WriteKey()
	if !ok {
		return nil
	}
	ks, ok := unsealed(store).(sealKeyStore)
	if !ok {
		return fmt.Errorf("cannot record the encryption key: store %T keeps no key records", store)
	}
	k := sealKey{ID: id.String(), WrittenAt: time.Now().UTC().Round(time.Microsecond)}
	k.Canary = keys.Seal(nil, canaryPlain, canaryBinding(k.ID))
	if err := ks.putSealKey(ctx, k); err != nil {
		return fmt.Errorf("cannot record the encryption key: %w", err)
	}
	return nil
}

// unsealed returns the store under SealStore.
func unsealed(store Store) Store {
	if s, ok := store.(*sealedStore); ok {
		return s.Store
	}
	return store
}

func describeKeys(keys *seal.Keyring) string {
	names := keys.Describe()
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func (s *Postgres) sealKeys(ctx context.Context) ([]sealKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT key_id, canary, written_at FROM seal_keys ORDER BY key_id`)
	if isUndefinedTable(err) {
		// store.migrate: manual before `gateway migrate`: no key can have
		// sealed anything yet. A start with keys fails in putSealKey.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read seal_keys: %w", err)
	}
	defer rows.Close()
	var out []sealKey
	for rows.Next() {
		var k sealKey
		if err := rows.Scan(&k.ID, &k.Canary, &k.WrittenAt); err != nil {
			return nil, fmt.Errorf("cannot read seal_keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read seal_keys: %w", err)
	}
	return out, nil
}

func (s *Postgres) putSealKey(ctx context.Context, k sealKey) error {
	// GREATEST: a node with a slower clock never moves written_at back.
	_, err := s.pool.Exec(ctx, `INSERT INTO seal_keys (key_id, canary, written_at) VALUES ($1, $2, $3)
		ON CONFLICT (key_id) DO UPDATE SET canary = EXCLUDED.canary,
			written_at = GREATEST(seal_keys.written_at, EXCLUDED.written_at)`, k.ID, k.Canary, k.WrittenAt)
	if isUndefinedTable(err) {
		return fmt.Errorf("cannot write seal_keys: the table is missing: run `gateway migrate` (store.migrate is manual): %w", err)
	}
	if err != nil {
		return fmt.Errorf("cannot write seal_keys: %w", err)
	}
	return nil
}

// isUndefinedTable reports Postgres's undefined_table error (42P01).
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

// bucketSealKeys maps a key id (hex) to the JSON of its sealKey. It is
// created by the first write, so store files of older versions open as
// they are.
const bucketSealKeys = "seal_keys"

func (s *Embedded) sealKeys(ctx context.Context) ([]sealKey, error) {
	var out []sealKey
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketSealKeys))
		if b == nil {
			return nil
		}
		return b.ForEach(func(id, v []byte) error {
			k := sealKey{ID: string(id)}
			if err := json.Unmarshal(v, &k); err != nil {
				return fmt.Errorf("cannot decode seal key %q: %w", id, err)
			}
			out = append(out, k)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read seal keys: %w", err)
	}
	return out, ctx.Err()
}

func (s *Embedded) putSealKey(ctx context.Context, k sealKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	v, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("cannot encode seal key: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucketSealKeys))
		if err != nil {
			return err
		}
		return b.Put([]byte(k.ID), v)
	})
	if err != nil {
		return fmt.Errorf("cannot write seal keys: %w", err)
	}
	return nil
}

var (
	_ sealKeyStore = (*Postgres)(nil)
	_ sealKeyStore = (*Embedded)(nil)
)
