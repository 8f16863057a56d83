package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idemgw/gateway/config"
)

// selfSigned makes a certificate for 127.0.0.1 with the given serial and
// returns it with its PEM certificate and key.
func selfSigned(t *testing.T, serial int64) (*x509.Certificate, []byte, []byte) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "gateway test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// Acceptance (issue 13): the listener serves TLS from listen_tls; after
// the files are rotated, a reload serves the new certificate to new
// connections without a restart; a bad pair is rejected with an error and
// the running certificate stays.
func TestListenTLSRotates(t *testing.T) {
	fake := startFake(t)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	install := func(certPEM, keyPEM []byte) {
		t.Helper()
		if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c1, cert1, key1 := selfSigned(t, 1001)
	c2, cert2, key2 := selfSigned(t, 1002)
	install(cert1, key1)
	path := filepath.Join(dir, "gateway.yaml")
	yamlText := testConfig(t, fake.URL, "listen_tls: {cert: "+certPath+", key: "+keyPath+"}\n")
	if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := startGatewayConfig(t, cfg)
	base := strings.Replace(g.URL, "http://", "https://", 1)

	roots := x509.NewCertPool()
	roots.AddCert(c1)
	roots.AddCert(c2)
	// A new connection per request, so each one shows the certificate
	// served at that moment.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
	served := func() int64 {
		t.Helper()
		resp, err := client.Do(newPost(t, base+"/v1/chat/completions", chatBody("m", "over tls", false)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.TLS == nil {
			t.Fatalf("over TLS: %d %s", resp.StatusCode, b)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	if got := served(); got != 1001 {
		t.Fatalf("served certificate %d, want 1001", got)
	}
	// Plain HTTP on the TLS port gets nothing useful.
	if resp, err := http.Get(g.URL + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP was served on the TLS listener")
		}
	}

	install(cert2, key2)
	if err := g.app.reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != 1002 {
		t.Fatalf("after rotation and reload: served certificate %d, want 1002", got)
	}

	// A broken renewal: the cert of one pair with the key of the other.
	install(cert1, key2)
	if err := g.app.reload(); err == nil || !strings.Contains(err.Error(), "listen_tls") {
		t.Fatalf("a mismatched pair was accepted: %v", err)
	}
	if !strings.Contains(g.logs.String(), "config reload rejected") || !strings.Contains(g.logs.String(), "not a valid pair") {
		t.Fatalf("the rejected pair was not logged:\n%s", g.logs.String())
	}
	if got := served(); got != 1002 {
		t.Fatalf("after a bad renewal: served certificate %d, want 1002 (the running one)", got)
	}
}

// The real binary: `gateway serve` with listen_tls, files rotated, SIGHUP.
func TestListenTLSSighup(t *testing.T) {
	fake := startFake(t)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	install := func(certPEM, keyPEM []byte) {
		t.Helper()
		for path, b := range map[string][]byte{certPath: certPEM, keyPath: keyPEM} {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	c1, cert1, key1 := selfSigned(t, 2001)
	c2, cert2, key2 := selfSigned(t, 2002)
	install(cert1, key1)
	port := freePort(t)
	path := filepath.Join(dir, "gateway.yaml")
	yamlText := fmt.Sprintf("listen: 127.0.0.1:%d\n", port) + removeListen(testConfig(t, fake.URL, "listen_tls: {cert: "+certPath+", key: "+keyPath+"}\n"))
	if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(gatewayBinary(t), "serve", "-config", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	roots := x509.NewCertPool()
	roots.AddCert(c1)
	roots.AddCert(c2)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
	serial := func() int64 {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}
	waitFor(t, 20*time.Second, "the gateway over TLS", func() bool { return serial() != 0 })
	if got := serial(); got != 2001 || !strings.Contains(logs.String(), `"tls":true`) {
		t.Fatalf("served %d, want 2001; log:\n%s", got, logs.String())
	}
	install(cert2, key2)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the reload log line", func() bool { return strings.Contains(logs.String(), "config reloaded") })
	if got := serial(); got != 2002 {
		t.Fatalf("after SIGHUP: served %d, want 2002", got)
	}
}
