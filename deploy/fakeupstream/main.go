// Command fakeupstream runs the fake OpenAI-compatible upstream of
// upstreams/upstreamtest on its own, for the demo, the benchmark script and
// the compose stack. It lives here rather than as a gateway subcommand so
// the production binary does not carry test code.
//
// Model names choose the behaviour (fail-503, hang, slow, ...; see
// upstreams/upstreamtest/behavior.go), since a separate process cannot call
// SetBehavior.
//
//	go run ./deploy/fakeupstream -listen 127.0.0.1:9000
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/idemgw/gateway/upstreams/upstreamtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run serves until SIGINT or SIGTERM, or until stop is closed (tests), and
// returns the exit code. It prints the base URL to configure as a
// provider's base_url, which tells the port when -listen asks for port 0.
func run(args []string, stdout, stderr io.Writer, stop <-chan struct{}) int {
	fs := flag.NewFlagSet("fakeupstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments %q\n", fs.Args())
		return 2
	}
	srv, err := upstreamtest.Listen(*listen)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, "fake upstream listening on", srv.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
	case <-stop:
	}
	_ = srv.Close()
	return 0
}
