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
		if env, again := platform.ServerEnviron(os.Environ()); again {
			err := reexec(env)
			fmt.Fprintf(os.Stderr, "atrium: running without the server's runtime settings (%s): %v\n", platform.MonitorGODEBUG, err)
		}
	}
	// SIGTERM (systemd, Kubernetes) and Ctrl-C both mean: finish in-flight
	// requests, then exit 0.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// reexec replaces the process with the same program, arguments and pid
// under env; it returns only on failure.
func reexec(env []string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, os.Args, env)
}
