package mirror_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/packagemanager/mirror"
)

// fakePip answers "config list" and the built-in default query from fixed
// outputs and records what was run.
type fakePip struct {
	env     map[string]string
	list    string
	listErr error
	builtin string
	ran     []string
}

func (f *fakePip) pip() mirror.Pip {
	return mirror.Pip{
		Python: "py",
		Getenv: func(k string) string { return f.env[k] },
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			f.ran = append(f.ran, name+" "+strings.Join(args, " "))
			if args[0] == "-m" {
				return []byte(f.list), f.listErr
			}
			if f.builtin == "" {
				return nil, errors.New("exit status 1")
			}
			return []byte(f.builtin), nil
		},
	}
}

func TestPipIndexURL(t *testing.T) {
	tests := []struct {
		name    string
		fake    fakePip
		want    string
		wantErr bool
		runs    int
	}{
		{name: "env wins, nothing run", fake: fakePip{env: map[string]string{"PIP_INDEX_URL": "https://mirror.invalid/simple"}, list: "global.index-url='http://other.invalid/'"},
			want: "https://mirror.invalid/simple/", runs: 0},
		{name: "install section beats global", fake: fakePip{list: "global.cert='/x'\nglobal.index-url='http://g.invalid/simple/'\ninstall.index-url='http://i.invalid/pypi/simple'\n"},
			want: "http://i.invalid/pypi/simple/", runs: 1},
		{name: "global section", fake: fakePip{list: ":env:.timeout='1'\nglobal.index-url=\"http://g.invalid/it's\"\n"},
			want: "http://g.invalid/it's/", runs: 1},
		{name: "builtin default", fake: fakePip{list: "global.cert='/x'\n", builtin: "https://default.invalid/simple\n"},
			want: "https://default.invalid/simple/", runs: 2},
		{name: "builtin after a failing config list", fake: fakePip{listErr: errors.New("no module named pip"), builtin: "WARNING: noise\nhttps://default.invalid/simple"},
			want: "https://default.invalid/simple/", runs: 2},
		{name: "no pip at all", fake: fakePip{listErr: errors.New("not found")}, wantErr: true, runs: 2},
		{name: "file index is refused", fake: fakePip{env: map[string]string{"PIP_INDEX_URL": "file:///srv/simple"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.fake.pip().IndexURL(t.Context())
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("IndexURL = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
			if len(tt.fake.ran) != tt.runs {
				t.Errorf("ran %d commands, want %d: %q", len(tt.fake.ran), tt.runs, tt.fake.ran)
			}
		})
	}
}

// requirePip skips (or, under CI, fails) when the host has no python3 with
// pip.
func requirePip(t *testing.T) {
	t.Helper()
	if err := exec.Command("python3", "-m", "pip", "--version").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 -m pip is required under CI: %v", err)
		}
		t.Skipf("python3 -m pip not available: %v", err)
	}
}

// TestDefaultIndexURL asks the real pip, with its environment controlled.
func TestDefaultIndexURL(t *testing.T) {
	requirePip(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "pip.conf")
	if err := os.WriteFile(conf, []byte("[global]\nindex-url = http://configured.invalid:8080/pypi/simple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	installConf := filepath.Join(dir, "install.conf")
	if err := os.WriteFile(installConf, []byte("[global]\nindex-url = http://g.invalid/simple\n[install]\nindex-url = http://i.invalid/simple/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, indexURL, configFile, want string
	}{
		{"PIP_INDEX_URL", "http://env.invalid/simple", os.DevNull, "http://env.invalid/simple/"},
		{"pip.conf global", "", conf, "http://configured.invalid:8080/pypi/simple/"},
		{"pip.conf install", "", installConf, "http://i.invalid/simple/"},
		{"pip's default", "", os.DevNull, ""}, // whatever pip says; checked for shape only
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PIP_CONFIG_FILE", tt.configFile)
			t.Setenv("PIP_INDEX_URL", tt.indexURL)
			got, err := mirror.DefaultIndexURL(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && got != tt.want {
				t.Fatalf("DefaultIndexURL = %q, want %q", got, tt.want)
			}
			u, err := url.Parse(got)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !strings.HasSuffix(got, "/") {
				t.Fatalf("DefaultIndexURL = %q: not an absolute http(s) URL ending in /", got)
			}
		})
	}
}
