package main

import (
	"crypto/tls"
	"net"
	"sync/atomic"

	"github.com/idemgw/gateway/config"
)

// certificates serves the listen_tls pair to new connections and lets a
// reload swap it: tls.Config.GetCertificate reads the current one for each
// handshake, so a renewed certificate needs no restart and connections
// already open keep theirs.
type certificates struct {
	cur atomic.Pointer[tls.Certificate]
}

// newCertificates loads the pair of c, or returns nil when TLS is off.
func newCertificates(c config.ListenTLS) (*certificates, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cert, err := c.Load()
	if err != nil {
		return nil, err
	}
	cs := &certificates{}
	cs.cur.Store(&cert)
	return cs, nil
}

// reload loads the pair of c and serves it from the next handshake on;
// on an error the current pair stays.
func (cs *certificates) reload(c config.ListenTLS) error {
	cert, err := c.Load()
	if err != nil {
		return err
	}
	cs.cur.Store(&cert)
	return nil
}

// listener wraps ln in TLS. fasthttp speaks HTTP/1.1 only, so that is
// the one protocol offered.
func (cs *certificates) listener(ln net.Listener) net.Listener {
	return tls.NewListener(ln, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cs.cur.Load(), nil
		},
	})
}
