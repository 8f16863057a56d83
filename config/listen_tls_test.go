package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a fresh self-signed certificate and its key under dir
// and returns their paths.
func writePair(t *testing.T, dir, name string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// listen_tls: both files or neither, readable, and a matching pair, each
// problem with its line.
func TestListenTLS(t *testing.T) {
	dir := t.TempDir()
	certA, keyA := writePair(t, dir, "a")
	_, keyB := writePair(t, dir, "b")
	tlsConf := func(body string) string { return minimal + "listen_tls: " + body + "\n" }
	bad := func(data, want string) {
		t.Helper()
		_, err := Parse("gateway.yaml", []byte(data), env())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q):\n got: %v\nwant: %s", data, err, want)
		}
	}
	bad(tlsConf("{cert: "+certA+"}"), `gateway.yaml:6: listen_tls.key: is required when listen_tls.cert is set`)
	bad(tlsConf("{key: "+keyA+"}"), `gateway.yaml:6: listen_tls.cert: is required when listen_tls.key is set`)
	bad(tlsConf("\n  cert: "+certA+"\n  key: "+dir+"/missing.key"), `gateway.yaml:8: listen_tls.key: cannot read "`+dir+`/missing.key": no such file or directory`)
	bad(tlsConf("{cert: "+certA+", key: "+keyB+"}"), `gateway.yaml:6: listen_tls: cert "`+certA+`" and key "`+keyB+`" are not a valid pair: tls: private key does not match public key`)
	bad(tlsConf("{cert: "+keyA+", key: "+keyA+"}"), `gateway.yaml:6: listen_tls: cert "`+keyA+`" and key "`+keyA+`" are not a valid pair`)
	bad(tlsConf("{cert: "+certA+", key: "+keyA+", ca: x}"), `listen_tls.ca: unknown key`)

	cfg, err := Parse("gateway.yaml", []byte(tlsConf("{cert: "+certA+", key: "+keyA+"}")), env())
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.ListenTLS.Enabled() {
		t.Fatal("listen_tls is not enabled")
	}
	if _, err := cfg.ListenTLS.Load(); err != nil {
		t.Fatal(err)
	}
	// Both variables unset: no TLS, and the env warnings name them.
	cfg, err = Parse("gateway.yaml", []byte(tlsConf("{cert: ${TLS_CERT}, key: ${TLS_KEY}}")), env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenTLS.Enabled() || len(cfg.Warnings()) < 2 || !strings.Contains(cfg.Warnings()[0], "${TLS_CERT} is not set") {
		t.Fatalf("enabled %v, warnings %q", cfg.ListenTLS.Enabled(), cfg.Warnings())
	}
}
