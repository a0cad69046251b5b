// Package cli implements the atrium command line: flags in, library calls
// out. It holds no product logic; that lives in suite and the products.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/atrium-suite/atrium/shared/buildinfo"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
	"github.com/atrium-suite/atrium/suite"
)

// Main runs the command line with args (without the program name) and
// returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "atrium:", err)
		return 1
	}
	return 0
}

// configFlags are the flags every server command shares.
type configFlags struct {
	path    string
	dataDir string
}

func (f *configFlags) register(cmd *cobra.Command) {
	f.registerOn(cmd.Flags())
}

// registerPersistent puts the flags on a command group and its children.
func (f *configFlags) registerPersistent(cmd *cobra.Command) {
	f.registerOn(cmd.PersistentFlags())
}

func (f *configFlags) registerOn(fs *pflag.FlagSet) {
	fs.StringVarP(&f.path, "config", "c", os.Getenv("ATRIUM_CONFIG"), "atrium.toml to read (default: built-in defaults; env ATRIUM_CONFIG)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory, overriding shared.data_dir")
}

// load resolves defaults → file → environment → flags, then validates.
func (f *configFlags) load() (config.Config, error) {
	cfg, err := config.Load(f.path, os.Environ())
	if err != nil {
		return cfg, err
	}
	if f.dataDir != "" {
		cfg.Shared.DataDir = f.dataDir
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "atrium",
		Short: "Atrium: Connect, Workbench and Package Manager as one suite",
		Long: `Atrium publishes data-science content (Connect), gives each user browser IDE
sessions (Workbench) and serves PyPI and CRAN repositories (Package Manager),
with one configuration file, one database and one data directory.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newUp(stdout, stderr), newServe(stdout, stderr), newUsers(stdin, stdout), newPM(stdout), newVersion(stdout))
	return root
}

func newUp(stdout, stderr io.Writer) *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole suite on this machine",
		Long: `Run Connect, Workbench and Package Manager on this machine, each on its own
port, and print their URLs. Stops gracefully on SIGTERM or Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load()
			if err != nil {
				return err
			}
			procs, most := platform.SetServerProcs(cfg.Shared.Procs, true)
			log, flush := platform.NewServerLogger(cfg.Shared, stderr)
			defer flush()
			slog.SetDefault(log) // libraries that log to the default logger (zitadel/oidc) join ours
			log.Info("starting atrium", "version", buildinfo.String(), "data_dir", cfg.Shared.DataDir, "database", databaseKind(cfg), "procs", procs, "procs_max", most)
			go platform.FollowLoad(cmd.Context(), procs, most, log)
			fmt.Fprintf(stdout, "Atrium %s is starting (data in %s).\n", buildinfo.String(), cfg.Shared.DataDir)
			return suite.Up(cmd.Context(), cfg, suite.Options{Logger: log, Out: stdout})
		},
	}
	f.register(cmd)
	return cmd
}

func newServe(stdout, stderr io.Writer) *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:       "serve connect|workbench|packagemanager|identity",
		Short:     "Run one product, or the embedded sign-in provider, alone",
		Long:      "Run one product (or the embedded OpenID provider) alone, as an agent or a Kubernetes pod does. Stops gracefully on SIGTERM.",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: append([]string{config.Identity}, config.Products...),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load()
			if err != nil {
				return err
			}
			// Connect and Workbench proxy to apps and sessions.
			proxies := args[0] == config.Connect || args[0] == config.Workbench
			procs, most := platform.SetServerProcs(cfg.Shared.Procs, proxies)
			log, flush := platform.NewServerLogger(cfg.Shared, stderr)
			defer flush()
			slog.SetDefault(log)
			log.Info("starting atrium", "product", args[0], "version", buildinfo.String(), "database", databaseKind(cfg), "procs", procs, "procs_max", most)
			go platform.FollowLoad(cmd.Context(), procs, most, log)
			return suite.Serve(cmd.Context(), cfg, args[0], suite.Options{Logger: log, Out: stdout})
		},
	}
	f.register(cmd)
	return cmd
}

func newVersion(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(stdout, "atrium", buildinfo.String())
		},
	}
}

func databaseKind(cfg config.Config) string {
	if cfg.Shared.DatabaseURL != "" {
		return "postgresql"
	}
	return "sqlite"
}
