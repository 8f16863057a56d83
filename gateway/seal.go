package main

import (
	"context"
	"time"

	"github.com/idemgw/gateway/config"
	"github.com/idemgw/gateway/dedupe"
	"github.com/idemgw/gateway/dedupe/seal"
)

// sealStore builds the keyring of store.encryption_keys, checks it against
// the keys the store was sealed with (a wrong or missing key is a start-up
// error, never a request's 503) and returns the store that seals and opens
// records with it.
func sealStore(ctx context.Context, cfg *config.Config, store dedupe.Store) (dedupe.Store, *seal.Keyring, error) {
	keys := make([]seal.Key, len(cfg.Store.EncryptionKeys))
	for i, k := range cfg.Store.EncryptionKeys {
		keys[i] = seal.Key{Name: k.Name(i), Secret: k.Secret()}
	}
	ring, err := seal.NewKeyring(keys)
	if err != nil {
		return nil, nil, err
	}
	if err := dedupe.CheckSealKeys(ctx, store, ring, sealKeep(cfg)); err != nil {
		return nil, nil, err
	}
	return dedupe.SealStore(store, ring), ring, nil
}

// sealKeep is how long a record may outlive the last use of the key that
// sealed it: key_ttl after a task that ran up to max_processing, plus the
// refresh period of the key's record.
func sealKeep(cfg *config.Config) time.Duration {
	return cfg.Dedupe.KeyTTL + cfg.Dedupe.MaxProcessing + dedupe.SealKeyRefresh
}

// refreshSealKey marks the write key as in use every SealKeyRefresh, so
// that a node still sealing with an old key keeps it required at other
// nodes' start-up.
func (a *app) refreshSealKey(ctx context.Context) {
	t := time.NewTicker(dedupe.SealKeyRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := dedupe.RefreshSealKey(rctx, a.store, a.keys); err != nil {
			a.log.Warn("cannot refresh the encryption key record", "error", err.Error())
		}
		cancel()
	}
}
