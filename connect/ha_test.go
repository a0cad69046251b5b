package connect_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/connect"
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

// TestTwoServersBuildOneEnvironment: servers sharing a data dir build an
// environment one at a time. One that needs the environment another is
// building waits for it and runs from it, instead of building into the
// same directory at once (each would remove what the other installed).
func TestTwoServersBuildOneEnvironment(t *testing.T) {
	cfg := pythonConfig(t, true) // HA is PostgreSQL's: skipped without it
	a := addUsers(t, startWith(t, cfg))
	b := startWith(t, cfg)
	b.admin, b.pub, b.viewer = a.admin, a.pub, a.viewer
	fa := connect.UseFakePython(t, a.srv, "3.11.2")
	fb := connect.UseFakePython(t, b.srv, "3.11.2")
	waiting := make(chan string, 1)
	connect.OnEnvLockWait(b.srv, func(key string) { waiting <- key })

	// deploy starts a deploy through ts and returns its task.
	deploy := func(ts testServer, name string) string {
		guid := ts.newContent(t, ts.pub, name)
		var bundle struct {
			ID string `json:"id"`
		}
		ts.call(t, "POST", "/__api__/v1/content/"+guid+"/bundles", ts.pub, bytes.NewReader(pythonBundle(t, "3.11.2", "Flask==3.0.3\n")), &bundle)
		var task struct {
			TaskID string `json:"task_id"`
		}
		if st := ts.call(t, "POST", "/__api__/v1/content/"+guid+"/deploy", ts.pub, jsonBody(map[string]string{"bundle_id": bundle.ID}), &task); st != 200 {
			t.Fatalf("deploy %s: %d", name, st)
		}
		return task.TaskID
	}
	building, release := fa.HoldNextBuild()
	t.Cleanup(release)
	first := deploy(a, "first")
	select {
	case <-building:
	case <-time.After(30 * time.Second):
		t.Fatal("the first server's build did not start")
	}
	second := deploy(b, "second")
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("the second server did not wait for the environment the first is building")
	}
	release()
	for _, d := range []struct {
		ts   testServer
		task string
	}{{a, first}, {b, second}} {
		if task := waitTask(t, d.ts, d.task, d.ts.pub); task.Code != 0 {
			t.Errorf("deploy: %+v", task)
		}
	}
	if fa.Builds() != 1 || fb.Builds() != 0 || fa.Clobbered() != 0 {
		t.Errorf("builds: %d by the first server, %d by the second, %d clobbered; want 1, 0, 0", fa.Builds(), fb.Builds(), fa.Clobbered())
	}
}

// TestCacheDeleteReachesOtherServer: a runtime cache deleted through one
// server also ends the processes the other server runs from it (its
// reaper finds the environment gone and restarts them), and the content
// still answers there.
func TestCacheDeleteReachesOtherServer(t *testing.T) {
	cfg := pythonConfig(t, true) // HA is PostgreSQL's: skipped without it
	a := addUsers(t, startWith(t, cfg))
	b := startWith(t, cfg)
	b.admin, b.pub, b.viewer = a.admin, a.pub, a.viewer
	connect.UseFakePython(t, a.srv, "3.11.2")
	fb := connect.UseFakePython(t, b.srv, "3.11.2")
	guid, _ := deployPython(t, a, "", "app", "3.11.2", "Flask==3.0.3\n")
	// One process each, and the reaper looking every quarter second.
	if st := a.call(t, "PATCH", "/__api__/v1/content/"+guid, a.pub, strings.NewReader(`{"min_processes":1,"idle_timeout":1}`), nil); st != 200 {
		t.Fatalf("patch: %d", st)
	}
	if st, body := b.get(t, "/content/"+guid+"/", b.pub); st != 200 {
		t.Fatalf("content through the other server: %d %s", st, body)
	}
	before := fb.Starts()

	var del struct {
		TaskID string `json:"task_id"`
	}
	if st := a.call(t, "DELETE", "/__api__/v1/system/caches/runtime", a.admin, jsonBody(map[string]any{"language": "Python", "version": "3.11.2", "image_name": "Local"}), &del); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	if task := waitTask(t, a, del.TaskID, a.admin); task.Code != 0 {
		t.Fatalf("delete: %+v", task)
	}
	connect.Eventually(t, "the other server to restart its process", func() bool { return fb.Starts() > before })
	if st, body := b.get(t, "/content/"+guid+"/", b.pub); st != 200 {
		t.Fatalf("content through the other server after the delete: %d %s", st, body)
	}
}
