package connect_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

// TestTwoServersShareContent: two Connect servers on one PostgreSQL
// database and one data dir are one Connect. Content deployed through one
// is served by the other (which starts it itself), a redeploy through one
// is what the other serves next, and settings written through one are read
// by the other.
func TestTwoServersShareContent(t *testing.T) {
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	cfg.Shared.DatabaseURL = dbtest.FreshDatabase(t) // skips without PostgreSQL
	a := addUsers(t, startWith(t, cfg))
	b := startWith(t, cfg)
	b.admin, b.pub, b.viewer = a.admin, a.pub, a.viewer

	guid := a.newContent(t, a.pub, "shared-site")
	if st := a.call(t, "PATCH", "/__api__/v1/content/"+guid, a.pub, strings.NewReader(`{"access_type":"logged_in","max_processes":2}`), nil); st != 200 {
		t.Fatalf("patch: %d", st)
	}
	for i, version := range []string{"version one", "version two"} {
		bundle := tarball(t, map[string]string{
			"manifest.json": `{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"}}`,
			"index.html":    "<p>" + version + "</p>",
		})
		if st := a.call(t, "POST", "/__api__/v1/content/"+guid+"/bundles", a.pub, bytes.NewReader(bundle), nil); st != 200 {
			t.Fatalf("upload %d: %d", i, st)
		}
		if task := deployAndWait(t, a, guid, `{"bundle_id":null}`); task.Code != 0 {
			t.Fatalf("deploy %d: %+v", i, task)
		}
		for name, ts := range map[string]testServer{"deploying server": a, "other server": b} {
			if st, body := ts.get(t, "/content/"+guid+"/", ts.viewer); st != 200 || !strings.Contains(body, version) {
				t.Errorf("%s after deploy %d: %d %q, want %q", name, i+1, st, body, version)
			}
		}
	}
	var ct map[string]any
	if st := b.call(t, "GET", "/__api__/v1/content/"+guid, b.pub, nil, &ct); st != 200 || ct["max_processes"] != 2.0 || ct["access_type"] != "logged_in" {
		t.Fatalf("settings through the other server: %d %v", st, ct)
	}
}
