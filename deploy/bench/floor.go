package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// cmdFloor runs the floor: the least a reverse proxy can do with fasthttp
// (forward the request, copy the answer back, relay a stream as it
// arrives), in front of the same fake upstream as the gateway, so that
// the gateway's lines are read as what it adds to a bare proxy.
func cmdFloor(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (loopback)")
	upstream := fs.String("upstream", "", "base URL of the upstream, e.g. http://127.0.0.1:9000 (loopback only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	u, err := loopbackURL(*upstream)
	if err != nil {
		fmt.Fprintln(stderr, "floor: -upstream:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "floor:", err)
		return 1
	}
	fmt.Fprintf(stderr, "floor listening on http://%s\n", ln.Addr())
	return serveUntilSignal(ln, floorHandler(hostPort(u)), stderr)
}

// floorHandler is the whole floor proxy.
func floorHandler(addr string) fasthttp.RequestHandler {
	up := &fasthttp.HostClient{Addr: addr, MaxConns: 20000, StreamResponseBody: true, MaxIdleConnDuration: time.Minute}
	return func(ctx *fasthttp.RequestCtx) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		ctx.Request.CopyTo(req)
		req.Header.Del("Connection")
		if err := up.Do(req, resp); err != nil {
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			ctx.Error("upstream failed: "+err.Error(), fasthttp.StatusBadGateway)
			return
		}
		fasthttp.ReleaseRequest(req)
		ctx.SetStatusCode(resp.StatusCode())
		ctx.Response.Header.SetContentTypeBytes(resp.Header.ContentType())
		if !strings.HasPrefix(string(resp.Header.ContentType()), "text/event-stream") {
			ctx.SetBody(resp.Body())
			fasthttp.ReleaseResponse(resp)
			return
		}
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer fasthttp.ReleaseResponse(resp)
			defer resp.CloseBodyStream()
			buf := make([]byte, 4096)
			for {
				n, err := resp.BodyStream().Read(buf)
				if n > 0 {
					_, _ = w.Write(buf[:n])
					if w.Flush() != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

// serveUntilSignal serves h on ln until SIGINT or SIGTERM.
func serveUntilSignal(ln net.Listener, h fasthttp.RequestHandler, stderr io.Writer) int {
	srv := &fasthttp.Server{Handler: h, NoDefaultServerHeader: true, CloseOnShutdown: true, IdleTimeout: time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "server stopped:", err)
		return 1
	case <-sig:
		_ = srv.Shutdown()
		return 0
	}
}
