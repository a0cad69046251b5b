package e2e_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/db/dbtest"
	"github.com/atrium-suite/atrium/shared/platform"
)

var products = []struct{ name, display string }{
	{"connect", "Connect"},
	{"workbench", "Workbench"},
	{"packagemanager", "Package Manager"},
}

func displayNames() []string {
	var names []string
	for _, p := range products {
		names = append(names, p.display)
	}
	return names
}

// TestUp is `make run` as a user sees it: one command brings every product
// up with its landing page, health and metrics, on SQLite by default and on
// PostgreSQL when the config says so; SIGTERM stops it cleanly.
func TestUp(t *testing.T) {
	cases := []struct {
		name     string
		env      func(t *testing.T) []string
		database string
	}{
		{"sqlite", func(*testing.T) []string { return nil }, "SQLite"},
		{"postgres", func(t *testing.T) []string {
			return []string{"ATRIUM_SHARED_DATABASE_URL=" + dbtest.FreshDatabase(t)}
		}, "PostgreSQL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env(t)
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "atrium.toml")
			if err := os.WriteFile(cfgPath, []byte(freePortsConfig), 0o600); err != nil {
				t.Fatal(err)
			}
			dataDir := filepath.Join(dir, "data")
			p := startAtrium(t, env, append(displayNames(), "Identity"), "up", "--config", cfgPath, "--data-dir", dataDir)
			pw, err := os.ReadFile(filepath.Join(dataDir, "admin-password"))
			if err != nil {
				t.Fatal(err)
			}
			browser := newBrowser(t)

			for _, prod := range products {
				base := p.urls[prod.display]
				_, body := signIn(t, browser, base+"/", "admin", strings.TrimSpace(string(pw)))
				if !strings.Contains(body, "<h1>Atrium "+prod.display+"</h1>") {
					t.Errorf("%s landing page:\n%s", prod.display, body)
				}
				if !strings.Contains(body, tc.database) {
					t.Errorf("%s landing page does not say it runs on %s", prod.display, tc.database)
				}
				// Every page links to every product at its real address.
				for _, other := range products {
					if !strings.Contains(body, `href="`+p.urls[other.display]+`/"`) {
						t.Errorf("%s landing page does not link to %s at %s", prod.display, other.display, p.urls[other.display])
					}
				}
				if status, body := get(t, base+"/__ping__", ""); status != 200 || strings.TrimSpace(body) != "{}" {
					t.Errorf("%s /__ping__: %d %q", prod.display, status, body)
				}
				if status, body := get(t, base+"/readyz", ""); status != 200 || !strings.Contains(body, "ready") {
					t.Errorf("%s /readyz: %d %q", prod.display, status, body)
				}
				if status, body := get(t, base+"/metrics", ""); status != 200 ||
					!strings.Contains(body, `atrium_build_info{server="`+prod.name+`",version="e2e-test"} 1`) {
					t.Errorf("%s /metrics: %d, no build info", prod.display, status)
				}
				if status, body := get(t, base+"/no/such/page", "text/html"); status != 404 || !strings.Contains(body, "<nav>") {
					t.Errorf("%s 404 is not a suite page: %d\n%s", prod.display, status, body)
				}
			}
			if tc.database == "SQLite" {
				for _, prod := range products {
					if _, err := os.Stat(filepath.Join(dataDir, prod.name, prod.name+".db")); err != nil {
						t.Errorf("no SQLite database for %s in the data dir: %v", prod.name, err)
					}
				}
			}
			if err := p.stop(t); err != nil {
				t.Errorf("exit after SIGTERM: %v, want 0", err)
			}
		})
	}
}

// TestServeOneProduct is what an agent or a pod runs.
func TestServeOneProduct(t *testing.T) {
	dataDir := t.TempDir()
	p := startAtrium(t, []string{"ATRIUM_CONNECT_LISTEN=127.0.0.1:0"}, []string{"Connect"},
		"serve", "connect", "--data-dir", dataDir)
	if status, _ := get(t, p.urls["Connect"]+"/readyz", ""); status != 200 {
		t.Errorf("readyz: %d", status)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "workbench")); !os.IsNotExist(err) {
		t.Errorf("serve connect touched workbench's data dir: %v", err)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// TestServerRuntime: a server runs under the Go runtime settings of
// platform.ServerEnviron and ServerProcs (cmd/atrium execs itself to get
// GODEBUG in before the runtime starts), and an operator's own GODEBUG
// schedtrace, GOMAXPROCS or shared.procs wins. Only the default for a
// proxying process may follow the load up to every CPU (procs_max in the
// start line; platform.FollowLoad's decisions are TestFollowLoad's).
func TestServerRuntime(t *testing.T) {
	auto := func(proxies bool) int {
		if v := os.Getenv("GOMAXPROCS"); v != "" {
			n, _ := strconv.Atoi(v)
			return n
		}
		return platform.ServerProcs(0, runtime.GOMAXPROCS(0), proxies)
	}
	cases := []struct {
		name        string
		product     string // served alone
		env         []string
		wantGODEBUG string
		wantProcs   int
		wantMost    int // procs_max
	}{
		{"defaults", "connect", []string{"GODEBUG=panicnil=0"}, "GODEBUG=panicnil=0," + platform.MonitorGODEBUG, auto(true), max(auto(true), auto(false))},
		{"Package Manager alone", "packagemanager", nil, "GODEBUG=" + platform.MonitorGODEBUG, auto(false), auto(false)},
		{"opted out", "connect", []string{"GODEBUG=schedtrace=0"}, "GODEBUG=schedtrace=0", auto(true), max(auto(true), auto(false))},
		{"procs from the config", "connect", []string{"ATRIUM_SHARED_PROCS=3"}, "GODEBUG=" + platform.MonitorGODEBUG, 3, 3},
		{"GOMAXPROCS wins", "connect", []string{"ATRIUM_SHARED_PROCS=3", "GOMAXPROCS=2"}, "GODEBUG=" + platform.MonitorGODEBUG, 2, 2},
	}
	display := map[string]string{"connect": "Connect", "packagemanager": "Package Manager"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"ATRIUM_" + strings.ToUpper(tc.product) + "_LISTEN=127.0.0.1:0"}, tc.env...)
			if !strings.Contains(strings.Join(tc.env, " "), "GODEBUG=") {
				env = append(env, "GODEBUG=") // the test's own GODEBUG, if any, is not the case's
			}
			p := startAtrium(t, env, []string{display[tc.product]}, "serve", tc.product, "--data-dir", t.TempDir())
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			var godebug []string
			for _, kv := range strings.Split(string(environ), "\x00") {
				if strings.HasPrefix(kv, "GODEBUG=") {
					godebug = append(godebug, kv)
				}
			}
			if len(godebug) != 1 || godebug[0] != tc.wantGODEBUG {
				t.Errorf("the server runs with %q, want [%q]", godebug, tc.wantGODEBUG)
			}
			_, metrics := get(t, p.urls[display[tc.product]]+"/metrics", "")
			if want := fmt.Sprintf("\ngo_sched_gomaxprocs_threads %d\n", tc.wantProcs); !strings.Contains(metrics, want) {
				// A server busy starting up may already have followed the
				// load (FollowLoad); its log then says so (in its next batch).
				eventually(t, fmt.Sprintf("/metrics to have %q, or the log to say the procs followed the load", strings.TrimSpace(want)), 5*time.Second,
					func() bool { return strings.Contains(p.stderr.String(), "procs follow the load") })
			}
			// The log is written in batches: the line may still be coming.
			want := fmt.Sprintf("procs=%d procs_max=%d", tc.wantProcs, tc.wantMost)
			eventually(t, "the start line to say "+want, 10*time.Second, func() bool { return strings.Contains(p.stderr.String(), want) })
		})
	}
}

// TestBadConfigFailsStartup: a bad value names its key and nothing starts.
func TestBadConfigFailsStartup(t *testing.T) {
	cases := []struct {
		name    string
		env     []string
		file    string
		wantKey string
	}{
		{"env", []string{"ATRIUM_CONNECT_LISTEN=nonsense"}, "", "connect.listen"},
		{"file", nil, "[workbench]\nidle_timeout = \"forever\"\n", "workbench.idle_timeout"},
		{"unknown key", nil, "[shared]\ndatabse_url = \"postgres://x\"\n", "shared.databse_url"},
		{"database", []string{"ATRIUM_SHARED_DATABASE_URL=mysql://db/atrium"}, "", "shared.database_url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"up", "--data-dir", filepath.Join(dir, "data")}
			if tc.file != "" {
				path := filepath.Join(dir, "atrium.toml")
				os.WriteFile(path, []byte(tc.file), 0o600)
				args = append(args, "--config", path)
			}
			cmd := exec.Command(atriumBinary(t), args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("started with a bad config:\n%s", out)
			}
			if !strings.Contains(string(out), tc.wantKey) {
				t.Errorf("error does not name %s:\n%s", tc.wantKey, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
				t.Errorf("a refused start-up created the data dir")
			}
		})
	}
}
