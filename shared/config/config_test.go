package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/config"
)

func TestDefaultsAreValid(t *testing.T) {
	cfg := config.Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if cfg.Connect.Listen != ":3939" || cfg.Workbench.Listen != ":8787" || cfg.PackageManager.Listen != ":4242" {
		t.Errorf("default ports are not Posit's: %+v", cfg)
	}
}

func TestLoadFileThenEnv(t *testing.T) {
	env := []string{
		"ATRIUM_WORKBENCH_LISTEN=127.0.0.1:9999",
		"ATRIUM_SHARED_LOG_LEVEL=warn",
		"UNRELATED=1",
	}
	cfg, err := config.Load("testdata/full.toml", env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"file sets data dir", cfg.Shared.DataDir, "/srv/atrium"},
		{"env beats file", cfg.Shared.LogLevel, "warn"},
		{"env sets listen", cfg.Workbench.Listen, "127.0.0.1:9999"},
		{"size with unit", cfg.Connect.MaxBodyBytes, config.ByteSize(2 << 30)},
		{"plain size", cfg.PackageManager.MaxBodyBytes, config.ByteSize(104857600)},
		{"duration", cfg.Connect.ShutdownTimeout.D(), time.Minute},
		{"default kept", cfg.PackageManager.ShutdownTimeout.D(), 30 * time.Second},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestBadValuesNameTheKey is the contract admins rely on: whatever the
// source, a bad value fails with the key's name.
func TestBadValuesNameTheKey(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		env     []string
		wantKey string
	}{
		{"unknown key", "[connect]\nlisten_port = 1\n", nil, "connect.listen_port"},
		{"unknown section", "[conect]\nlisten = \":1\"\n", nil, "conect"},
		{"listen not host:port", "[connect]\nlisten = \"3939\"\n", nil, "connect.listen"},
		{"port out of range", "[workbench]\nlisten = \":70000\"\n", nil, "workbench.listen"},
		{"host not an IP", "[workbench]\nlisten = \"example.org:80\"\n", nil, "workbench.listen"},
		{"duplicate port", "[workbench]\nlisten = \":3939\"\n", nil, "workbench.listen"},
		{"bad duration", "[connect]\nidle_timeout = \"soon\"\n", nil, "connect.idle_timeout"},
		{"zero timeout", "[connect]\nshutdown_timeout = \"0s\"\n", nil, "connect.shutdown_timeout"},
		{"bad size", "[packagemanager]\nmax_body_bytes = \"lots\"\n", nil, "packagemanager.max_body_bytes"},
		{"zero size", "[packagemanager]\nmax_body_bytes = 0\n", nil, "packagemanager.max_body_bytes"},
		{"bad public url", "[connect]\npublic_url = \"connect.example.org\"\n", nil, "connect.public_url"},
		{"mysql url", "[shared]\ndatabase_url = \"mysql://x@y/z\"\n", nil, "shared.database_url"},
		{"empty data dir", "[shared]\ndata_dir = \"\"\n", nil, "shared.data_dir"},
		{"bad log level", "", []string{"ATRIUM_SHARED_LOG_LEVEL=loud"}, "shared.log_level"},
		{"negative procs", "", []string{"ATRIUM_SHARED_PROCS=-1"}, "shared.procs"},
		{"bad env size", "", []string{"ATRIUM_CONNECT_MAX_BODY_BYTES=-3"}, "connect.max_body_bytes"},
		{"bad env duration", "", []string{"ATRIUM_CONNECT_IDLE_TIMEOUT=x"}, "connect.idle_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "atrium.toml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path, tc.env)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var cerr *config.Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %q is not a *config.Error", err)
			}
			if !strings.HasPrefix(cerr.Key, tc.wantKey) {
				t.Errorf("error names %q, want %q (%v)", cerr.Key, tc.wantKey, err)
			}
		})
	}
}

func TestSyntaxErrorNamesLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atrium.toml")
	os.WriteFile(path, []byte("[shared]\n\ndata_dir = \n"), 0o600)
	_, err := config.Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("got %v, want an error naming line 3", err)
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := config.Load(filepath.Join(t.TempDir(), "nope.toml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

// TestEveryKeyDocumented keeps docs/configuration.md complete.
func TestEveryKeyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range config.Keys() {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
		if !strings.Contains(string(doc), config.EnvName(k)) {
			t.Errorf("docs/configuration.md does not name %s", config.EnvName(k))
		}
	}
}
