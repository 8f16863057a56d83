package routes

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
)

// clientKey is a configured bearer key, kept only as its sha256.
type clientKey struct {
	tenant string
	sum    [sha256.Size]byte
}

// authKeys builds the key table; config validation guarantees the hex.
func authKeys(a config.Auth) []clientKey {
	var keys []clientKey
	for _, k := range a.Keys {
		ck := clientKey{tenant: k.Tenant}
		if k.Key != "" {
			ck.sum = sha256.Sum256([]byte(k.Key))
		} else if b, err := hex.DecodeString(k.SHA256); err == nil && len(b) == sha256.Size {
			copy(ck.sum[:], b)
		} else {
			continue
		}
		keys = append(keys, ck)
	}
	return keys
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(ctx *fasthttp.RequestCtx) []byte {
	h := ctx.Request.Header.Peek("Authorization")
	if len(h) < 7 || !bytes.EqualFold(h[:7], []byte("Bearer ")) {
		return nil
	}
	return bytes.TrimSpace(h[7:])
}

// tenantFor maps the request's bearer key to its tenant. Every configured
// key is compared, in constant time, so timing tells nothing about which
// prefix matched.
func tenantFor(ctx *fasthttp.RequestCtx, keys []clientKey) (string, bool) {
	tok := bearer(ctx)
	if tok == nil {
		return "", false
	}
	sum := sha256.Sum256(tok)
	tenant, found := "", 0
	for i := range keys {
		if subtle.ConstantTimeCompare(sum[:], keys[i].sum[:]) == 1 {
			tenant, found = keys[i].tenant, 1
		}
	}
	return tenant, found == 1
}

// isAdmin checks the admin bearer key in constant time.
func isAdmin(ctx *fasthttp.RequestCtx, adminKey string) bool {
	tok := bearer(ctx)
	if adminKey == "" || tok == nil {
		return false
	}
	a, b := sha256.Sum256(tok), sha256.Sum256([]byte(adminKey))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
