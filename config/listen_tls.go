package config

import (
	"crypto/tls"
	"fmt"
	"os"
)

// ListenTLS is listen_tls: the certificate and key files of the HTTPS
// listener (DESIGN.md section 8). Both or neither are set; a SIGHUP reads
// the files again, so a renewed certificate needs no restart.
type ListenTLS struct {
	// Cert is the PEM certificate chain file, leaf first.
	Cert string `yaml:"cert"`
	// Key is the PEM private key file of the leaf certificate.
	Key string `yaml:"key"`
}

// Enabled reports whether the listener serves TLS. Validation makes sure
// that a half-set pair never reaches it.
func (t ListenTLS) Enabled() bool { return t.Cert != "" || t.Key != "" }

// Load reads and parses the certificate pair.
func (t ListenTLS) Load() (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot load the listen_tls pair %q and %q: %w", t.Cert, t.Key, err)
	}
	return cert, nil
}

// validateTLS checks that both files are given, readable and a matching
// pair, so that `gateway check` and a reload catch a bad renewal before
// the listener would serve it.
func (c *Config) validateTLS(v *validator) {
	t := c.ListenTLS
	if !t.Enabled() {
		return
	}
	switch {
	case t.Cert == "":
		v.errorf("listen_tls.cert", "is required when listen_tls.key is set (is the environment variable set?)")
		return
	case t.Key == "":
		v.errorf("listen_tls.key", "is required when listen_tls.cert is set (is the environment variable set?)")
		return
	}
	ok := true
	for _, f := range []struct{ path, file string }{{"listen_tls.cert", t.Cert}, {"listen_tls.key", t.Key}} {
		if _, err := os.ReadFile(f.file); err != nil {
			v.errorf(f.path, "cannot read %q: %v", f.file, unwrapPathError(err))
			ok = false
		}
	}
	if !ok {
		return
	}
	if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
		v.errorf("listen_tls", "cert %q and key %q are not a valid pair: %v", t.Cert, t.Key, err)
	}
}

// unwrapPathError drops the path that os errors repeat.
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
