package routes

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"

	"github.com/valyala/fasthttp"

	"github.com/idemgw/gateway/config"
)

// clientKey is a configured bearer key, kept only as its sha256, with
// its limits (limits.go).
type clientKey struct {
	tenant      string
	sum         [sha256.Size]byte
	limitID     string
	maxInflight int
	perMinute   int
}

// authKeys builds the key table; config validation guarantees the hex.
func authKeys(a config.Auth) []clientKey {
	var keys []clientKey
	for _, k := range a.Keys {
		ck := clientKey{tenant: k.Tenant, maxInflight: k.MaxInflight, perMinute: k.RequestsPerMinute}
		if k.Key != "" {
			ck.sum = sha256.Sum256([]byte(k.Key))
		} else if b, err := hex.DecodeString(k.SHA256); err == nil && len(b) == sha256.Size {
			copy(ck.sum[:], b)
		} else {
			continue
		}
		ck.limitID = limitID(ck.sum)
		keys = append(keys, ck)
	}
	return keys
}

// bearer returns the token of an Authorization: Bearer header. Two
// Authorization headers are no credentials: which one a proxy in front
// checked is anyone's guess (issue 13's hostile catalogue).
func bearer(ctx *fasthttp.RequestCtx) []byte {
	all := ctx.Request.Header.PeekAll("Authorization")
	if len(all) != 1 {
		return nil
	}
	h := all[0]
	if len(h) < 7 || !bytes.EqualFold(h[:7], []byte("Bearer ")) {
		return nil
	}
	return bytes.TrimSpace(h[7:])
}

// clientToken returns the client's key: the Authorization: Bearer token
// (OpenAI's SDKs, Claude Code's ANTHROPIC_AUTH_TOKEN), else x-api-key
// (Anthropic's SDKs, ANTHROPIC_API_KEY). Both go through the same lookup,
// so a key's tenant and limits do not depend on the header it came in.
func clientToken(ctx *fasthttp.RequestCtx) []byte {
	if tok := bearer(ctx); tok != nil {
		return tok
	}
	if k := bytes.TrimSpace(ctx.Request.Header.Peek("x-api-key")); len(k) > 0 {
		return k
	}
	return nil
}

// keyFor finds the configured key of the request's client key. Every
// configured key is compared, in constant time, so timing tells nothing
// about which prefix matched.
func keyFor(ctx *fasthttp.RequestCtx, keys []clientKey) *clientKey {
	tok := clientToken(ctx)
	if tok == nil {
		return nil
	}
	sum := sha256.Sum256(tok)
	var found *clientKey
	for i := range keys {
		if subtle.ConstantTimeCompare(sum[:], keys[i].sum[:]) == 1 {
			found = &keys[i]
		}
	}
	return found
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
