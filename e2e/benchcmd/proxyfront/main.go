// Command proxyfront is Atrium's side of the Connect proxy benchmark
// (scripts/bench/connect.sh): shared/proxy's Proxy with a StickyBalancer,
// configured as Connect configures it for a running app (connect/runtime.go:
// proxy.NewSticky and proxy.New with Prefix /content/{guid}/, the prefix
// kept), in front of one backend process. Connect's own routing and
// sign-in are left out, so the number is the proxy's alone; the Go runtime
// runs with a server's settings (platform.ServerEnviron, ServerProcs), with
// -procs as the shared.procs setting.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/h1"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/platform"
	"github.com/atrium-suite/atrium/shared/proxy"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	backend := flag.String("backend", "http://127.0.0.1:8080", "the backend's URL (several: comma-separated, balanced as Connect balances an app's processes)")
	guid := flag.String("guid", "0f5e2a9c-bench-4b1e-9d7a-000000000001", "content GUID in the prefix /content/{guid}/")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for go tool pprof)")
	procs := flag.Int("procs", 0, "Go procs (the shared.procs setting); 0: Connect's default, half the CPUs and all of them under load")
	flag.Parse()
	// The Go runtime as Atrium's servers run it (cmd/atrium and
	// platform.SetServerProcs), so the number is the server's.
	if err := platform.ExecUnderServerEnviron(); err != nil {
		log.Printf("proxyfront: running without the server's runtime settings: %v", err)
	}
	n, most := platform.SetServerProcs(*procs, true)
	fmt.Fprintf(os.Stderr, "proxyfront: procs=%d, up to %d under load\n", n, most)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go platform.FollowLoad(ctx, n, most, logger)
	if err := profiled(*cpuprofile, func() error { return run(ctx, *addr, *backend, *guid) }); err != nil {
		log.Fatalf("proxyfront: %v", err)
	}
}

// profiled runs f, under the CPU profiler when path is set.
func profiled(path string, f func() error) error {
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		_ = out.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	ferr := f()
	pprof.StopCPUProfile()
	if err := out.Close(); err != nil && ferr == nil {
		ferr = fmt.Errorf("cpu profile: %w", err)
	}
	return ferr
}

func run(ctx context.Context, addr, backend, guid string) error {
	var targets []proxy.Target
	for i, b := range strings.Split(backend, ",") {
		u, err := url.Parse(b)
		if err != nil {
			return fmt.Errorf("backend URL: %w", err)
		}
		targets = append(targets, proxy.Target{URL: u, ID: fmt.Sprintf("bench-backend-%d", i+1)})
	}
	prefix := "/content/" + guid + "/"
	bal, err := proxy.NewSticky(proxy.StickyConfig{Prefix: prefix, LeastLoaded: true})
	if err != nil {
		return err
	}
	if err := bal.Set(targets); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := proxy.New(proxy.Config{Prefix: prefix, Balancer: bal, Logger: logger})
	if err != nil {
		return err
	}
	// Atrium's product server (shared/httpx), as Connect runs it: the
	// engine with its middleware, and the proxy on the fast path that
	// Connect registers for /content/ (connect.Server.serveContentFast).
	srv, err := httpx.New(httpx.Config{Name: "proxyfront", Addr: addr, Logger: logger})
	if err != nil {
		return err
	}
	srv.Engine().Any(prefix+"*path", gin.WrapH(p))
	srv.HandleFast(prefix, prefix+"*path", func(w http.ResponseWriter, r *h1.Request) bool {
		return p.ServeFast(w, r, nil)
	})
	fmt.Fprintf(os.Stderr, "proxyfront: %s%s → %s\n", addr, prefix, backend)
	return srv.Serve(ctx)
}
