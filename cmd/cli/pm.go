package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/atrium-suite/atrium/packagemanager"
	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
)

// newPM is `atrium pm`, modelled on Posit Package Manager's rspm: it works
// on this server's Package Manager database and files directly.
func newPM(stdout io.Writer) *cobra.Command {
	var f configFlags
	var output string
	cmd := &cobra.Command{
		Use:   "pm",
		Short: "Manage Package Manager's repositories, sources and packages",
		Long: `Manage Package Manager: create repositories and sources, subscribe sources
to repositories (earlier sources win), add package files, list them and show
snapshots. Works on this server's data dir and database, like rspm.`,
	}
	f.registerPersistent(cmd)
	cmd.PersistentFlags().StringVarP(&output, "output", "o", "text", "text or json")
	run := func(fn func(ctx context.Context, svc *packagemanager.Service, cfg config.Config) (any, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load()
			if err != nil {
				return err
			}
			svc, err := packagemanager.OpenService(cmd.Context(), cfg, nil)
			if err != nil {
				return err
			}
			defer svc.Close()
			res, err := fn(cmd.Context(), svc, cfg)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			if s, ok := res.(fmt.Stringer); ok {
				fmt.Fprint(stdout, s.String())
			}
			return nil
		}
	}

	var name, typ, url, desc string
	createRepo := &cobra.Command{Use: "repo", Short: "Create a repository (--type python or r)", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, svc *packagemanager.Service, _ config.Config) (any, error) {
			r, err := svc.Store.CreateRepo(ctx, name, typ, desc)
			if err != nil {
				return nil, err
			}
			return text{v: packagemanager.ReposJSON([]store.Repo{r})[0], s: fmt.Sprintf("created repository %s (%s)\n", r.Name, r.Type)}, nil
		})}
	createRepo.Flags().StringVar(&name, "name", "", "repository name (used in URLs)")
	createRepo.Flags().StringVar(&typ, "type", "python", "python or r")
	createRepo.Flags().StringVar(&desc, "description", "", "shown on the repository page")
	createSource := &cobra.Command{Use: "source", Short: "Create a source (--type local-python, pypi or local-r)", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, svc *packagemanager.Service, _ config.Config) (any, error) {
			src, err := svc.Store.CreateSource(ctx, name, typ, url)
			if err != nil {
				return nil, err
			}
			return text{v: packagemanager.SourceJSON{Name: src.Name, Type: src.Type, Upstream: src.UpstreamURL},
				s: fmt.Sprintf("created source %s (%s)\n", src.Name, src.Type)}, nil
		})}
	createSource.Flags().StringVar(&name, "name", "", "source name")
	createSource.Flags().StringVar(&typ, "type", store.LocalPython, "local-python, pypi or local-r")
	createSource.Flags().StringVar(&url, "url", "", "upstream simple index, for a pypi source")
	var scope, sources, expires string
	createToken := &cobra.Command{Use: "token", Short: "Create a token that may upload to sources (printed once)",
		Long: `Create a Package Manager token, printed once and stored only as a hash.
With --scope sources:write it may upload to the --sources named (every source
when none are named), e.g. with twine: -u __token__ -p TOKEN.`,
		Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, svc *packagemanager.Service, _ config.Config) (any, error) {
			var names []string
			for _, n := range strings.Split(sources, ",") {
				if n = strings.TrimSpace(n); n != "" {
					names = append(names, n)
				}
			}
			var exp *time.Time
			if expires != "" {
				d, err := parseExpiry(expires)
				if err != nil {
					return nil, err
				}
				t := time.Now().Add(d)
				exp = &t
			}
			secret, tok, err := svc.Store.CreateToken(ctx, scope, names, desc, exp)
			if err != nil {
				return nil, err
			}
			return text{v: map[string]any{"token": secret, "id": tok.ID, "scope": tok.Scope, "sources": names}, s: secret + "\n"}, nil
		})}
	createToken.Flags().StringVar(&scope, "scope", store.ScopeSourcesWrite, "what the token may do: sources:write")
	createToken.Flags().StringVar(&sources, "sources", "", "comma-separated sources (default: every source)")
	createToken.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30d (default: no expiry)")
	createToken.Flags().StringVar(&desc, "description", "", "what the token is for")
	create := &cobra.Command{Use: "create", Short: "Create a repository, a source or a token"}
	create.AddCommand(createRepo, createSource, createToken)

	var repo, source string
	subscribe := &cobra.Command{Use: "subscribe", Short: "Add a source to a repository (after the ones it has)", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, svc *packagemanager.Service, _ config.Config) (any, error) {
			if err := svc.Store.Subscribe(ctx, repo, source); err != nil {
				return nil, err
			}
			return text{v: map[string]string{"repo": repo, "source": source}, s: fmt.Sprintf("%s now subscribes to %s\n", repo, source)}, nil
		})}
	subscribe.Flags().StringVar(&repo, "repo", "", "repository")
	subscribe.Flags().StringVar(&source, "source", "", "source")

	var paths string
	add := &cobra.Command{Use: "add", Short: "Add package files to a local source (--path a.whl,b_1.0.tar.gz)", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, svc *packagemanager.Service, _ config.Config) (any, error) {
			src, err := svc.Store.Source(ctx, source)
			if err != nil {
				return nil, err
			}
			var added []map[string]any
			var out strings.Builder
			for _, p := range strings.Split(paths, ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					continue
				}
				fh, err := os.Open(p)
				if err != nil {
					return nil, err
				}
				var pkg, version, file string
				var txn int64
				if src.Type == store.LocalR {
					var rp store.RPackage
					rp, txn, err = svc.AddRPackage(ctx, source, filepath.Base(p), fh, "atrium pm add")
					pkg, version, file = rp.Package, rp.Version, rp.Filename
				} else {
					var pf store.PyFile
					pf, txn, err = svc.AddPythonFile(ctx, source, filepath.Base(p), fh, packagemanager.Want{}, "atrium pm add")
					pkg, version, file = pf.DisplayName, pf.Version, pf.Filename
				}
				fh.Close()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p, err)
				}
				added = append(added, map[string]any{"package": pkg, "version": version, "filename": file, "transaction": txn})
				if txn == 0 {
					fmt.Fprintf(&out, "%s: already in %s\n", file, source)
				} else {
					fmt.Fprintf(&out, "added %s %s to %s (transaction %d)\n", pkg, version, source, txn)
				}
			}
			return text{v: added, s: out.String()}, nil
		})}
	add.Flags().StringVar(&source, "source", "", "a local-python or local-r source")
	add.Flags().StringVar(&paths, "path", "", "comma-separated package files")

	list := &cobra.Command{Use: "list", Short: "List repositories and their sources", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, svc *packagemanager.Service, _ config.Config) (any, error) {
			repos, err := svc.Store.ListRepos(ctx)
			if err != nil {
				return nil, err
			}
			var out strings.Builder
			tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "REPOSITORY\tTYPE\tSOURCES")
			for _, r := range packagemanager.ReposJSON(repos) {
				var srcs []string
				for _, s := range r.Sources {
					srcs = append(srcs, s.Name+" ("+s.Type+")")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Type, strings.Join(srcs, ", "))
			}
			tw.Flush()
			return text{v: packagemanager.ReposJSON(repos), s: out.String()}, nil
		})}

	snapshot := &cobra.Command{Use: "snapshot", Short: "Show a repository's current snapshot and its frozen URL", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, svc *packagemanager.Service, cfg config.Config) (any, error) {
			r, err := svc.Store.Repo(ctx, repo)
			if err != nil {
				return nil, err
			}
			txn, err := svc.Store.Latest(ctx)
			if err != nil {
				return nil, err
			}
			u := fmt.Sprintf("%s/%s/%d", platform.PublicURL(cfg, config.PackageManager), r.Name, txn)
			if r.Type == store.Python {
				u += "/simple/"
			}
			return text{v: map[string]any{"repo": r.Name, "transaction": txn, "url": u},
				s: fmt.Sprintf("%s is at transaction %d; frozen URL: %s\n", r.Name, txn, u)}, nil
		})}
	snapshot.Flags().StringVar(&repo, "repo", "", "repository")

	cmd.AddCommand(create, subscribe, add, list, snapshot)
	return cmd
}

// text is a result with a JSON form and a text form.
type text struct {
	v any
	s string
}

func (t text) String() string { return t.s }

func (t text) MarshalJSON() ([]byte, error) { return json.Marshal(t.v) }
