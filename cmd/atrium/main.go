// Command atrium is the one binary of the Atrium suite: it brings the whole
// suite up, serves one product alone, and administers the suite. The
// commands live in package cli; this file only wires the process to them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/atrium-suite/atrium/cmd/cli"
)

func main() {
	// SIGTERM (systemd, Kubernetes) and Ctrl-C both mean: finish in-flight
	// requests, then exit 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
