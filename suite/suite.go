package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"text/tabwriter"

	"github.com/atrium-suite/atrium/connect"
	"github.com/atrium-suite/atrium/packagemanager"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
	"github.com/atrium-suite/atrium/workbench"
)

// runner is what the suite needs of a product: to serve until told to stop.
type runner interface {
	Run(ctx context.Context) error
	Close() error
	URL() string
}

// constructors builds each product by name.
var constructors = map[string]func(context.Context, config.Config, platform.Options) (runner, error){
	config.Connect: func(ctx context.Context, cfg config.Config, o platform.Options) (runner, error) {
		return connect.New(ctx, cfg, o)
	},
	config.Workbench: func(ctx context.Context, cfg config.Config, o platform.Options) (runner, error) {
		return workbench.New(ctx, cfg, o)
	},
	config.PackageManager: func(ctx context.Context, cfg config.Config, o platform.Options) (runner, error) {
		return packagemanager.New(ctx, cfg, o)
	},
	config.Identity: func(ctx context.Context, cfg config.Config, o platform.Options) (runner, error) {
		return platform.OpenIdentity(ctx, cfg, o)
	},
}

func displayName(name string) string {
	if name == config.Identity {
		return "Identity"
	}
	return platform.DisplayNames[name]
}

// Options are the caller's choices beyond the configuration.
type Options struct {
	Logger *slog.Logger
	// Out receives the table of product URLs once every product is up.
	Out io.Writer
}

// Up runs the whole suite on this machine until ctx is done: the embedded
// OpenID provider (unless an external issuer is configured) and the three
// products.
func Up(ctx context.Context, cfg config.Config, opts Options) error {
	names := config.Products
	if cfg.EmbeddedIdentity() {
		names = append([]string{config.Identity}, names...)
	}
	return run(ctx, cfg, names, opts)
}

// Serve runs one product, or the embedded provider, alone until ctx is done.
func Serve(ctx context.Context, cfg config.Config, name string, opts Options) error {
	if !slices.Contains(config.Products, name) && name != config.Identity {
		return fmt.Errorf("unknown server %q (want one of connect, workbench, packagemanager, identity)", name)
	}
	return run(ctx, cfg, []string{name}, opts)
}

func run(ctx context.Context, cfg config.Config, products []string, opts Options) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Bind every listener before building any product, so that a port 0
	// in the config becomes a real port that every product's navigation
	// and printed URL can use.
	listeners := map[string]net.Listener{}
	defer func() {
		if err != nil {
			for _, ln := range listeners {
				ln.Close()
			}
		}
	}()
	for _, p := range products {
		srv, _ := cfg.Server(p)
		ln, err := net.Listen("tcp", srv.Listen)
		if err != nil {
			return fmt.Errorf("%s: listen %s: %w", p, srv.Listen, err)
		}
		listeners[p] = ln
		srv.Listen = ln.Addr().String()
	}

	var started []runner
	for _, p := range products {
		r, err := constructors[p](ctx, cfg, platform.Options{Logger: opts.Logger, Listener: listeners[p]})
		delete(listeners, p) // the product owns it now, closed or not
		if err != nil {
			for _, s := range started {
				s.Close()
			}
			return fmt.Errorf("start %s: %w", p, err)
		}
		started = append(started, r)
	}

	if opts.Out != nil {
		tw := tabwriter.NewWriter(opts.Out, 0, 0, 2, ' ', 0)
		for i, p := range products {
			fmt.Fprintf(tw, "%s\t%s/\n", displayName(p), started[i].URL())
		}
		tw.Flush()
		if slices.Contains(products, config.Identity) {
			fmt.Fprintf(opts.Out, "Sign in as admin with the password in %s\n", platform.AdminPasswordFile(cfg))
		}
	}

	// One product failing stops the others: a half-running suite would
	// look up to a health check while being broken for users.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(started))
	for i, r := range started {
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", products[i], err)
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
