package connect

import (
	"context"
	"os"

	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestReadPackages reads a site-packages laid out as pip and uv leave it:
// what counts is each distribution's METADATA, not its directory's name.
func TestReadPackages(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // under lib/python3.11/site-packages
		want  string            // "Name==Version" by normalized name
	}{
		{"dist-info", map[string]string{
			"flask-3.0.3.dist-info/METADATA":     "Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.3\nSummary: x\n",
			"flask/__init__.py":                  "",
			"Jinja2-3.1.4.dist-info/METADATA":    "Metadata-Version: 2.1\r\nName: Jinja2\r\nVersion: 3.1.4\r\n",
			"itsdangerous-2.2.0.dist-info/x.txt": "",
		}, "flask==3.0.3 jinja2==3.1.4"},
		// The description follows the headers; a "Name:" in it is not
		// the distribution's.
		{"description after the headers", map[string]string{
			"a-1.dist-info/METADATA": "Name: a\nVersion: 1\n\nName: not-this\nVersion: 9\n",
		}, "a==1"},
		{"no version, no name", map[string]string{
			"a-1.dist-info/METADATA": "Name: a\n",
			"b-1.dist-info/METADATA": "Version: 1\n",
		}, ""},
		{"headers in any case, first one wins", map[string]string{
			"a-1.dist-info/METADATA": "name: a\nVERSION: 1.0\nVersion: 2.0\n",
		}, "a==1.0"},
		{"egg-info", map[string]string{
			"legacy-0.1-py3.11.egg-info/PKG-INFO": "Metadata-Version: 1.0\nName: legacy\nVersion: 0.1\n",
		}, "legacy==0.1"},
		// Two records of one distribution (a broken install): listed once.
		{"one name twice", map[string]string{
			"typing_extensions-4.12.2.dist-info/METADATA": "Name: typing_extensions\nVersion: 4.12.2\n",
			"typing-extensions-4.0.dist-info/METADATA":    "Name: typing-extensions\nVersion: 4.0\n",
		}, "typing-extensions==4.0"},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := t.TempDir()
			site := filepath.Join(env, "lib", "python3.11", "site-packages")
			for name, content := range tt.files {
				p := filepath.Join(site, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			pkgs, err := readPackages(env)
			if err != nil {
				t.Fatal(err)
			}
			if pkgs == nil {
				t.Error("nil list (encodes as null)")
			}
			var got []string
			for _, p := range pkgs {
				got = append(got, p.Name+"=="+p.Version)
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("readPackages = %q, want %q", strings.Join(got, " "), tt.want)
			}
		})
	}
}

func TestPackageFilter(t *testing.T) {
	p := bundlePackage{ContentGUID: "g1", BundleID: 7, Language: "python", LanguageVersion: "3.11.2", Name: "flask", Version: "3.0.3"}
	tests := []struct {
		f    packageFilter
		want bool
	}{
		{packageFilter{}, true},
		{packageFilter{name: "flask"}, true},
		{packageFilter{name: "flask-login"}, false},
		{packageFilter{language: "Python"}, true},
		{packageFilter{language: "r"}, false},
		{packageFilter{version: "3.0.3"}, true},
		{packageFilter{version: "3.0"}, false},
		{packageFilter{hash: "abc"}, false},
		{packageFilter{bundleID: "7"}, true},
		{packageFilter{bundleID: "70"}, false},
		{packageFilter{appGUID: "g1"}, true},
		{packageFilter{appGUID: "g2"}, false},
	}
	for _, tt := range tests {
		if got := tt.f.match(p); got != tt.want {
			t.Errorf("%+v.match = %v, want %v", tt.f, got, tt.want)
		}
	}
}

// TestEnvDirName: what the runtime caches count as an environment, and of
// which version.
func TestEnvDirName(t *testing.T) {
	for name, version := range map[string]string{
		"3.11.2-0123456789abcdef01234567":                    "3.11.2",
		"3.13.0-ffffffffffffffffffffffff":                    "3.13.0",
		".deleting-3.11.2-0123456789abcdef01234567-abcdefgh": "",
		"3.11.2-0123456789abcdef0123456":                     "", // short hash
		"3.11.2-0123456789ABCDEF01234567":                    "",
		"tmp":                                                "",
	} {
		got := ""
		if m := envDirName.FindStringSubmatch(name); m != nil {
			got = m[1]
		}
		if got != version {
			t.Errorf("%q: version %q, want %q", name, got, version)
		}
	}
}

// TestPageJSONHugePage: a page far past the end is empty, without the
// offset overflowing.
func TestPageJSONHugePage(t *testing.T) {
	all := []gin.H{{"a": 1}, {"a": 2}, {"a": 3}}
	tests := []struct {
		page, size, want int
	}{
		{1, 2, 2},
		{2, 2, 1},
		{3, 2, 0},
		{1 << 62, 500, 0},
		{int(^uint(0) >> 1), 500, 0},
	}
	for _, tt := range tests {
		got := pageJSON(all, tt.page, tt.size)
		if n := len(got["results"].([]gin.H)); n != tt.want || got["total"] != 3 || got["current_page"] != tt.page {
			t.Errorf("page %d size %d: %d results, total %v", tt.page, tt.size, n, got["total"])
		}
	}
}

// FuzzParseMetadata: any METADATA yields a name and version without line
// breaks or surrounding space, or nothing.
func FuzzParseMetadata(f *testing.F) {
	for _, seed := range []string{
		"Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.3\n\nbody",
		"Name:\nVersion:\n",
		"name : x\r\nversion:1\r\n",
		"\nName: late\nVersion: 1\n",
		"Name: " + strings.Repeat("a", 300) + "\nVersion: 1\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, content string) {
		p, err := parseMetadata(strings.NewReader(content))
		if err != nil {
			return // a line too long: reported, not guessed at
		}
		for _, v := range []string{p.Name, p.Version} {
			if strings.ContainsAny(v, "\r\n") || strings.TrimSpace(v) != v {
				t.Errorf("parseMetadata(%q) = %+v", content, p)
			}
		}
	})
}

// TestRecordEnvironment: an environment's packages are read from its
// site-packages when it was just built or none are recorded, and not again
// on every start of content that runs from it (a server's restart).
func TestRecordEnvironment(t *testing.T) {
	f := newSchedFixture(t, testSchedule())
	ctx := context.Background()
	env := pyEnv{key: "3.11.2-000000000000000000000001", path: t.TempDir(), version: "3.11.2"}
	metadata := filepath.Join(env.path, "lib", "python3.11", "site-packages", "a-1.dist-info", "METADATA")
	install := func(version string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(metadata), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(metadata, []byte("Name: A\nVersion: "+version+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recorded := func() string {
		t.Helper()
		var name, version string
		if err := f.s.st.db.QueryRowContext(ctx, `SELECT name, version FROM environment_packages WHERE env_key = ?`, env.key).Scan(&name, &version); err != nil {
			t.Fatal(err)
		}
		return name + "==" + version
	}
	steps := []struct {
		what    string
		version string // installed before the step
		built   bool
		want    string
	}{
		{"none recorded: read", "1", false, "a==1"},
		{"recorded, started again: not read", "2", false, "a==1"},
		{"built again: read", "2", true, "a==2"},
	}
	for _, st := range steps {
		install(st.version)
		env.built = st.built
		if err := f.s.recordEnvironment(ctx, env, f.guid, 0); err != nil {
			t.Fatalf("%s: %v", st.what, err)
		}
		if got := recorded(); got != st.want {
			t.Errorf("%s: recorded %s, want %s", st.what, got, st.want)
		}
	}
}
