package main

import (
	"net"
	"time"
)

// writeDeadlineListener gives every accepted connection a deadline on
// each write (write_timeout): fasthttp's own WriteTimeout bounds a whole
// response, which would cut long streams, while a client that stops
// reading must not hold its goroutine and its stream's buffered events
// forever (issue 13). It wraps the TCP listener, under TLS, so the
// handshake's writes are bounded too.
type writeDeadlineListener struct {
	net.Listener
	timeout time.Duration
}

func (l writeDeadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writeDeadlineConn{Conn: c, timeout: l.timeout}, nil
}

// writeDeadlineConn renews the write deadline before each write, so only a
// write that makes no progress for the whole timeout fails.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
