// Command atrium is the one binary of the Atrium suite: it brings the whole
// suite up, serves one product alone, and administers the suite. The
// commands live in package cli; this file only wires the process to them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/atrium-suite/atrium/cmd/cli"
	"github.com/atrium-suite/atrium/shared/platform"
)

func main() {
	// A server runs under the runtime settings platform.ServerEnviron
	// gives (GODEBUG is read only as the runtime starts, hence a fresh
	// exec of this same program). Should the exec fail, the server runs
	// anyway, only at a higher CPU cost per request.
	if platform.IsServerCommand(os.Args[1:]) {
		if err := platform.ExecUnderServerEnviron(); err != nil {
			fmt.Fprintf(os.Stderr, "atrium: running without the server's runtime settings: %v\n", err)
		}
	}
	// SIGTERM (systemd, Kubernetes) and Ctrl-C both mean: finish in-flight
	// requests, then exit 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
