// Command gateway is the idempotent LLM gateway: an OpenAI-compatible
// reverse proxy that never pays twice for the same LLM call.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `gateway - idempotent OpenAI-compatible LLM gateway

Usage:
  gateway serve   [-config gateway.yaml]   run the gateway
  gateway check   [-config gateway.yaml]   validate the config and print it with secrets redacted
  gateway migrate [-config gateway.yaml]   apply the Postgres schema migrations
  gateway reap    [-config gateway.yaml]   run one reaper pass (zombies, expired tasks)
  gateway version                          print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "migrate":
		return cmdMigrate(rest, stdout, stderr)
	case "reap":
		return cmdReap(rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "gateway", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return 2
}
