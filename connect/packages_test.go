package connect_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/connect"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

// The packages API and runtime caches, with Python content deployed on
// connect.FakePython: environments are directories with a dist-info per
// requirement, processes are in-process HTTP servers. What is tested is
// Connect's bookkeeping (what is recorded, who sees it, what a cache
// delete stops and removes, what is rebuilt), not uv or Python.

// pythonConfig is a test server's configuration: content runs as the
// test's own user, so no account is created even when run as root.
func pythonConfig(t *testing.T, postgres bool) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	cfg.Connect.RunAs = ""
	if postgres {
		cfg.Shared.DatabaseURL = dbtest.FreshDatabase(t)
	}
	return cfg
}

// startPython runs Connect with interpreters 3.11.2 and 3.12.4.
func startPython(t *testing.T, postgres bool) (testServer, *connect.FakePython) {
	t.Helper()
	ts := addUsers(t, startWith(t, pythonConfig(t, postgres)))
	return ts, connect.UseFakePython(t, ts.srv, "3.11.2", "3.12.4")
}

func forEachPythonDialect(t *testing.T, fn func(t *testing.T, ts testServer, fp *connect.FakePython)) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			ts, fp := startPython(t, pg)
			fn(t, ts, fp)
		})
	}
}

// pythonBundle is a python-api bundle asking for Python version with the
// given requirements.txt.
func pythonBundle(t *testing.T, version, requirements string) []byte {
	t.Helper()
	manifest := fmt.Sprintf(`{"version":1,"metadata":{"appmode":"python-api","entrypoint":"app"},`+
		`"python":{"version":%q,"package_manager":{"name":"pip","package_file":"requirements.txt"}},`+
		`"files":{"app.py":{"checksum":"x"},"requirements.txt":{"checksum":"y"}}}`, version)
	return tarball(t, map[string]string{"manifest.json": manifest, "app.py": "app = None\n", "requirements.txt": requirements})
}

// deployPython creates content (unless guid is given) owned by pub,
// uploads a bundle and deploys it; it returns the GUID and bundle id.
func deployPython(t *testing.T, ts testServer, guid, name, version, requirements string) (string, string) {
	t.Helper()
	if guid == "" {
		guid = ts.newContent(t, ts.pub, name)
	}
	var b struct {
		ID string `json:"id"`
	}
	if st := ts.call(t, "POST", "/__api__/v1/content/"+guid+"/bundles", ts.pub, bytes.NewReader(pythonBundle(t, version, requirements)), &b); st != 200 {
		t.Fatalf("upload %s: %d", name, st)
	}
	if task := deployAndWait(t, ts, guid, fmt.Sprintf(`{"bundle_id":%q}`, b.ID)); task.Code != 0 {
		t.Fatalf("deploy %s: %+v", name, task)
	}
	return guid, b.ID
}

type pkgJSON map[string]any

// names lists "name==version" of packages, in order.
func names(pkgs []pkgJSON) string {
	var out []string
	for _, p := range pkgs {
		out = append(out, fmt.Sprintf("%v==%v", p["name"], p["version"]))
	}
	return strings.Join(out, " ")
}

type pkgPage struct {
	Results     []pkgJSON `json:"results"`
	CurrentPage int       `json:"current_page"`
	Total       int       `json:"total"`
}

// getPackages gets a page of /v1/packages, checking that it has exactly
// the keys posit-sdk's Page dataclass takes.
func (ts testServer) getPackages(t *testing.T, query, key string) pkgPage {
	t.Helper()
	var raw map[string]json.RawMessage
	if st := ts.call(t, "GET", "/__api__/v1/packages"+query, key, nil, &raw); st != 200 {
		t.Fatalf("packages%s: %d %s", query, st, raw)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range raw {
			if !yield(k) {
				return
			}
		}
	})
	if strings.Join(keys, ",") != "current_page,results,total" {
		t.Errorf("packages%s: keys %v, want exactly current_page, results, total", query, keys)
	}
	var p pkgPage
	b, _ := json.Marshal(raw)
	json.Unmarshal(b, &p)
	return p
}

func TestContentPackages(t *testing.T) {
	forEachPythonDialect(t, func(t *testing.T, ts testServer, fp *connect.FakePython) {
		guid, bundleID := deployPython(t, ts, "", "flask-app", "3.11.7", "Flask==3.0.3\nWerkzeug==3.1.9\ntyping_extensions==4.12.2\n")
		path := "/__api__/v1/content/" + guid + "/packages"

		// Every installed distribution, by normalized name (whatever case
		// its METADATA uses), including what Connect adds for the mode
		// (gunicorn).
		var pkgs []pkgJSON
		if st := ts.call(t, "GET", path, ts.pub, nil, &pkgs); st != 200 {
			t.Fatalf("content packages: %d", st)
		}
		if got := names(pkgs); got != "flask==3.0.3 gunicorn==1.0 typing-extensions==4.12.2 werkzeug==3.1.9" {
			t.Errorf("content packages: %s", got)
		}
		want := pkgJSON{"language": "python", "language_version": "3.11.2", "name": "flask", "version": "3.0.3", "hash": nil}
		if len(pkgs) == 0 || fmt.Sprint(pkgs[0]) != fmt.Sprint(want) {
			t.Errorf("content package record: %v, want %v", pkgs, want)
		}

		filters := []struct {
			query, want string
		}{
			{"?name=flask", "flask==3.0.3"},
			{"?name=Flask", "flask==3.0.3"}, // names match normalized
			{"?name=typing_extensions", "typing-extensions==4.12.2"},
			{"?version=1.0", "gunicorn==1.0"},
			{"?language=python&name=gunicorn", "gunicorn==1.0"},
			{"?language=Python&name=gunicorn", "gunicorn==1.0"},
			{"?language=r", ""},
			{"?hash=abc", ""}, // Python packages have no hash
			{"?name=numpy", ""},
		}
		for _, f := range filters {
			pkgs = nil
			if st := ts.call(t, "GET", path+f.query, ts.pub, nil, &pkgs); st != 200 || pkgs == nil || names(pkgs) != f.want {
				t.Errorf("content packages%s: %d %q, want %q", f.query, st, names(pkgs), f.want)
			}
		}

		// Who may list them: whoever may view the item; others are told it
		// does not exist, as for the rest of the content API.
		var e apiErr
		st := ts.call(t, "GET", path, ts.viewer, nil, &e)
		wantErr(t, "viewer without permission", st, 404, e, 4, "not found")
		e = nil
		st = ts.call(t, "GET", "/__api__/v1/content/00000000-0000-4000-8000-000000000000/packages", ts.pub, nil, &e)
		wantErr(t, "unknown content", st, 404, e, 4, "not found")
		if st := ts.call(t, "POST", "/__api__/v1/content/"+guid+"/permissions", ts.pub,
			jsonBody(map[string]string{"principal_guid": ts.viewerID, "principal_type": "user", "role": "viewer"}), nil); st != 200 {
			t.Fatalf("grant viewer: %d", st)
		}
		pkgs = nil
		if st := ts.call(t, "GET", path, ts.viewer, nil, &pkgs); st != 200 || len(pkgs) != 4 {
			t.Errorf("viewer with permission: %d %v", st, pkgs)
		}

		// The content page shows the same to those who manage the item:
		// the interpreter and the packages; a viewer gets the app alone.
		st, page := ts.page(t, "/connect/apps/"+guid+"/", ts.pub)
		for _, want := range []string{`<td id="python-version">3.11.2</td>`, `<summary>4 installed</summary>`,
			`<tr><td>flask</td><td>3.0.3</td></tr>`, `<tr><td>werkzeug</td><td>3.1.9</td></tr>`} {
			if st != 200 || !strings.Contains(page, want) {
				t.Errorf("owner's content page: %d, no %s", st, want)
			}
		}
		if st, page := ts.page(t, "/connect/apps/"+guid+"/", ts.viewer); st != 200 || strings.Contains(page, `id="packages"`) {
			t.Errorf("viewer's content page: %d, packages shown: %v", st, strings.Contains(page, `id="packages"`))
		}
		if st := ts.call(t, "GET", path, ts.admin, nil, nil); st != 200 {
			t.Errorf("admin: %d", st)
		}

		// Content not deployed yet has none.
		empty := ts.newContent(t, ts.pub, "empty-app")
		pkgs = nil
		if st := ts.call(t, "GET", "/__api__/v1/content/"+empty+"/packages", ts.pub, nil, &pkgs); st != 200 || pkgs == nil || len(pkgs) != 0 {
			t.Errorf("undeployed content: %d %v", st, pkgs)
		}

		// A new bundle with other requirements: the list follows the
		// active bundle, and its environment is a new one.
		builds := fp.Builds()
		_, bundle2 := deployPython(t, ts, guid, "flask-app", "3.12.1", "Flask==3.1.0\n")
		if fp.Builds() != builds+1 {
			t.Errorf("builds %d, want %d", fp.Builds(), builds+1)
		}
		pkgs = nil
		ts.call(t, "GET", path, ts.pub, nil, &pkgs)
		if names(pkgs) != "flask==3.1.0 gunicorn==1.0" || len(pkgs) == 0 || pkgs[0]["language_version"] != "3.12.4" {
			t.Errorf("after a redeploy: %v", pkgs)
		}
		// The same requirements again: the environment is reused, not
		// built, and still recorded for the new bundle.
		builds = fp.Builds()
		guid3, _ := deployPython(t, ts, "", "flask-copy", "3.12.1", "Flask==3.1.0\n")
		pkgs = nil
		ts.call(t, "GET", "/__api__/v1/content/"+guid3+"/packages", ts.pub, nil, &pkgs)
		if fp.Builds() != builds || names(pkgs) != "flask==3.1.0 gunicorn==1.0" {
			t.Errorf("reused environment: %d builds (want %d), packages %v", fp.Builds(), builds, pkgs)
		}
		if bundleID == bundle2 {
			t.Errorf("bundle ids %s and %s", bundleID, bundle2)
		}
	})
}

func TestPackagesAcrossContent(t *testing.T) {
	forEachPythonDialect(t, func(t *testing.T, ts testServer, fp *connect.FakePython) {
		mine, myBundle := deployPython(t, ts, "", "mine", "3.11.1", "Flask==3.0.3\n")
		// Another publisher's item, through the same API.
		theirs := ts.newContent(t, ts.other, "theirs")
		var b struct {
			ID string `json:"id"`
		}
		if st := ts.call(t, "POST", "/__api__/v1/content/"+theirs+"/bundles", ts.other, bytes.NewReader(pythonBundle(t, "3.12.0", "Flask==3.1.0\nrequests==2.32.3\n")), &b); st != 200 {
			t.Fatalf("upload theirs: %d", st)
		}
		var started struct {
			TaskID string `json:"task_id"`
		}
		ts.call(t, "POST", "/__api__/v1/content/"+theirs+"/deploy", ts.other, strings.NewReader(`{"bundle_id":null}`), &started)
		waitTask(t, ts, started.TaskID, ts.other)

		// Admins see every item's packages, with where each is used.
		all := ts.getPackages(t, "?page_number=1&page_size=1000000", ts.admin)
		if all.Total != 5 || len(all.Results) != 5 || all.CurrentPage != 1 {
			t.Fatalf("all packages: %+v", all)
		}
		var flask pkgJSON
		for _, p := range all.Results {
			if p["app_guid"] == mine && p["name"] == "flask" {
				flask = p
			}
		}
		want := pkgJSON{"language": "python", "language_version": "3.11.2", "name": "flask", "version": "3.0.3", "hash": nil,
			"bundle_id": myBundle, "app_id": mine, "app_guid": mine}
		if fmt.Sprint(flask) != fmt.Sprint(want) {
			t.Errorf("package record %v, want %v", flask, want)
		}

		filters := []struct {
			query string
			key   string
			want  int
		}{
			{"?name=flask", ts.admin, 2},
			{"?name=FLASK&version=3.1.0", ts.admin, 1},
			{"?app_guid=" + mine, ts.admin, 2},
			{"?app_id=" + theirs, ts.admin, 3},
			{"?app_id=" + theirs + "&app_guid=" + mine, ts.admin, 0},
			{"?bundle_id=" + myBundle, ts.admin, 2},
			{"?bundle_id=999999", ts.admin, 0},
			{"?language=python", ts.admin, 5},
			{"?language=r", ts.admin, 0},
			{"?hash=abc", ts.admin, 0},
			// Others see what they may view.
			{"", ts.pub, 2},
			{"", ts.other, 3},
			{"?name=requests", ts.pub, 0},
			{"", ts.viewer, 0},
		}
		for _, f := range filters {
			if p := ts.getPackages(t, f.query, f.key); p.Total != f.want || len(p.Results) != f.want {
				t.Errorf("packages%s: total %d, %d results, want %d", f.query, p.Total, len(p.Results), f.want)
			}
		}
		ts.call(t, "POST", "/__api__/v1/content/"+theirs+"/permissions", ts.other,
			jsonBody(map[string]string{"principal_guid": ts.viewerID, "principal_type": "user", "role": "viewer"}), nil)
		if p := ts.getPackages(t, "", ts.viewer); p.Total != 3 || p.Results[0]["app_guid"] != theirs {
			t.Errorf("viewer with permission: %+v", p)
		}

		// Pages: the sizes posit-sdk and others ask for.
		pages := []struct {
			query         string
			page, results int
		}{
			{"?page_size=2&page_number=1", 1, 2},
			{"?page_size=2&page_number=3", 3, 1},
			{"?page_size=2&page_number=4", 4, 0},
			{"?page_size=2&page_number=9223372036854775807", 9223372036854775807, 0},
		}
		for _, pg := range pages {
			if p := ts.getPackages(t, pg.query, ts.admin); p.Total != 5 || p.CurrentPage != pg.page || len(p.Results) != pg.results {
				t.Errorf("packages%s: page %d, %d results, total %d", pg.query, p.CurrentPage, len(p.Results), p.Total)
			}
		}
		for _, bad := range []string{"?page_number=0", "?page_size=0", "?page_size=x"} {
			var e apiErr
			st := ts.call(t, "GET", "/__api__/v1/packages"+bad, ts.admin, nil, &e)
			wantErr(t, "packages"+bad, st, 400, e, 3, "page_")
		}

		// Deleting content takes its packages out of the list.
		if st := ts.call(t, "DELETE", "/__api__/v1/content/"+theirs, ts.other, nil, nil); st != 204 {
			t.Fatalf("delete: %d", st)
		}
		if p := ts.getPackages(t, "", ts.admin); p.Total != 2 {
			t.Errorf("after deleting content: %+v", p)
		}
	})
}

// TestPackagesPaging: more packages than a page holds. posit-sdk asks for
// page_size=1000000 and pages until it has the total; a page holds 500.
func TestPackagesPaging(t *testing.T) {
	ts, _ := startPython(t, false)
	var reqs strings.Builder
	for i := range 600 {
		fmt.Fprintf(&reqs, "pkg%03d==1.%d\n", i, i)
	}
	deployPython(t, ts, "", "big", "3.11.2", reqs.String())
	var got []pkgJSON
	for page := 1; page < 5; page++ {
		p := ts.getPackages(t, fmt.Sprintf("?page_number=%d&page_size=1000000", page), ts.admin)
		if p.Total != 601 || p.CurrentPage != page {
			t.Fatalf("page %d: total %d, current_page %d", page, p.Total, p.CurrentPage)
		}
		if len(p.Results) == 0 {
			break
		}
		if len(p.Results) > 500 {
			t.Errorf("page %d has %d results, more than 500", page, len(p.Results))
		}
		got = append(got, p.Results...)
	}
	seen := map[any]bool{}
	for _, p := range got {
		seen[p["name"]] = true
	}
	if len(got) != 601 || len(seen) != 601 {
		t.Errorf("%d packages over the pages (%d distinct), want 601", len(got), len(seen))
	}
}

// waitTask polls a task until it finishes, as key's user.
func waitTask(t *testing.T, ts testServer, id, key string) taskStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var all []string
	first := 0
	for time.Now().Before(deadline) {
		var task taskStatus
		if st := ts.call(t, "GET", fmt.Sprintf("/__api__/v1/tasks/%s?first=%d&wait=1", id, first), key, nil, &task); st != 200 {
			t.Fatalf("task %s: %d", id, st)
		}
		all = append(all, task.Output...)
		first = task.Last
		if task.Finished {
			task.Output = all
			return task
		}
	}
	t.Fatalf("task %s did not finish within 60s", id)
	return taskStatus{}
}

type cacheList struct {
	Caches []map[string]any `json:"caches"`
}

func (c cacheList) String() string {
	var out []string
	for _, x := range c.Caches {
		out = append(out, fmt.Sprintf("%v %v %v", x["language"], x["version"], x["image_name"]))
	}
	return strings.Join(out, "; ")
}

func (ts testServer) caches(t *testing.T) cacheList {
	t.Helper()
	var c cacheList
	if st := ts.call(t, "GET", "/__api__/v1/system/caches/runtime", ts.admin, nil, &c); st != 200 || c.Caches == nil {
		t.Fatalf("caches: %d %+v", st, c)
	}
	return c
}

// envDirsOf lists the environment directories of Python version.
func envDirsOf(t *testing.T, ts testServer, version string) []string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(connect.EnvsDir(ts.srv), version+"-*"))
	return dirs
}

func TestRuntimeCaches(t *testing.T) {
	forEachPythonDialect(t, func(t *testing.T, ts testServer, fp *connect.FakePython) {
		const path = "/__api__/v1/system/caches/runtime"
		if c := ts.caches(t); len(c.Caches) != 0 {
			t.Errorf("caches before any deploy: %v", c)
		}
		// Admins only, as Connect.
		for _, tc := range []struct{ what, method, key string }{
			{"publisher lists", "GET", ts.pub},
			{"viewer lists", "GET", ts.viewer},
			{"publisher deletes", "DELETE", ts.pub},
		} {
			var e apiErr
			st := ts.call(t, tc.method, path, tc.key, jsonBody(map[string]any{"language": "Python", "version": "3.11.2", "image_name": "Local"}), &e)
			wantErr(t, tc.what, st, 403, e, 6, "admin")
		}

		app, _ := deployPython(t, ts, "", "app-311", "3.11.7", "Flask==3.0.3\n")
		deployPython(t, ts, "", "app-311-b", "3.11.7", "Flask==3.0.2\n")
		other, _ := deployPython(t, ts, "", "app-312", "3.12.1", "Flask==3.1.0\n")
		if c := ts.caches(t); c.String() != "Python 3.11.2 Local; Python 3.12.4 Local" {
			t.Fatalf("caches: %v", c)
		}
		if n := len(envDirsOf(t, ts, "3.11.2")); n != 2 {
			t.Fatalf("%d environments of 3.11.2, want 2", n)
		}

		// Unknown caches and bad bodies.
		for _, tc := range []struct {
			what   string
			body   map[string]any
			status int
			code   int
			msg    string
		}{
			{"unknown version", map[string]any{"language": "Python", "version": "3.10.0", "image_name": "Local"}, 404, 4, "Cache does not exist"},
			{"unknown version, dry run", map[string]any{"language": "Python", "version": "3.10.0", "image_name": "Local", "dry_run": true}, 404, 4, "Cache does not exist"},
			{"R", map[string]any{"language": "R", "version": "3.11.2", "image_name": "Local"}, 404, 4, "Cache does not exist"},
			{"another image", map[string]any{"language": "Python", "version": "3.11.2", "image_name": "ghcr.io/x"}, 404, 4, "Cache does not exist"},
			{"a minor version only", map[string]any{"language": "Python", "version": "3.11", "image_name": "Local"}, 404, 4, "Cache does not exist"},
			{"no version", map[string]any{"language": "Python", "image_name": "Local"}, 400, 3, "version"},
			{"no language", map[string]any{"version": "3.11.2", "image_name": "Local"}, 400, 3, "language"},
		} {
			var e apiErr
			st := ts.call(t, "DELETE", path, ts.admin, jsonBody(tc.body), &e)
			wantErr(t, tc.what, st, tc.status, e, tc.code, tc.msg)
		}

		// A dry run says the delete would work and changes nothing.
		var dry map[string]any
		st := ts.call(t, "DELETE", path, ts.admin, jsonBody(map[string]any{"language": "Python", "version": "3.11.2", "image_name": "Local", "dry_run": true}), &dry)
		if id, ok := dry["task_id"]; st != 200 || !ok || id != nil || dry["language"] != "Python" || dry["version"] != "3.11.2" || dry["image_name"] != "Local" {
			t.Errorf("dry run: %d %v", st, dry)
		}
		if c := ts.caches(t); len(c.Caches) != 2 || len(envDirsOf(t, ts, "3.11.2")) != 2 || connect.RunningProcesses(ts.srv, app) != 1 {
			t.Errorf("after a dry run: caches %v, %d environments, %d processes", c, len(envDirsOf(t, ts, "3.11.2")), connect.RunningProcesses(ts.srv, app))
		}

		// The delete: a task that stops what runs from the environments
		// and removes them. The language is matched as rsconnect users
		// type it.
		var del struct {
			TaskID *string `json:"task_id"`
		}
		if st := ts.call(t, "DELETE", path, ts.admin, jsonBody(map[string]any{"language": "python", "version": "3.11.2", "image_name": "Local"}), &del); st != 200 || del.TaskID == nil {
			t.Fatalf("delete: %d %+v", st, del)
		}
		if st := ts.call(t, "GET", "/__api__/v1/tasks/"+*del.TaskID, ts.pub, nil, nil); st != 404 {
			t.Errorf("a publisher polls the admin's task: %d", st)
		}
		task := waitTask(t, ts, *del.TaskID, ts.admin)
		log := strings.Join(task.Output, "\n")
		if task.Code != 0 {
			t.Fatalf("delete task: %+v", task)
		}
		for _, want := range []string{"Python 3.11.2", `"app-311"`, `"app-311-b"`, "Stopped 1 process(es) of content \"app-311\"", "Removed environment 3.11.2-", "2 environment(s) removed"} {
			if !strings.Contains(log, want) {
				t.Errorf("task log lacks %q:\n%s", want, log)
			}
		}
		if c := ts.caches(t); c.String() != "Python 3.12.4 Local" {
			t.Errorf("caches after the delete: %v", c)
		}
		if dirs := envDirsOf(t, ts, "3.11.2"); len(dirs) != 0 {
			t.Errorf("environments left: %v", dirs)
		}
		if n := connect.RunningProcesses(ts.srv, app); n != 0 {
			t.Errorf("%d processes of app-311 still run", n)
		}
		if n := connect.RunningProcesses(ts.srv, other); n != 1 {
			t.Errorf("%d processes of app-312 run, want 1 (another version's cache)", n)
		}
		// Its packages are still known: the content still runs with them.
		var pkgs []pkgJSON
		ts.call(t, "GET", "/__api__/v1/content/"+app+"/packages", ts.pub, nil, &pkgs)
		if names(pkgs) != "flask==3.0.3 gunicorn==1.0" {
			t.Errorf("packages after the delete: %v", pkgs)
		}

		// The next request starts a process, which builds the environment
		// again first.
		builds := fp.Builds()
		if st, body := ts.get(t, "/content/"+app+"/", ts.pub); st != 200 {
			t.Fatalf("content after the delete: %d %s", st, body)
		}
		if fp.Builds() != builds+1 || len(envDirsOf(t, ts, "3.11.2")) != 1 {
			t.Errorf("builds %d (want %d), environments %v", fp.Builds(), builds+1, envDirsOf(t, ts, "3.11.2"))
		}
		if c := ts.caches(t); len(c.Caches) != 2 {
			t.Errorf("caches after the rebuild: %v", c)
		}
	})
}

// TestDeletedEnvironmentRebuiltOnStart: whatever removed a deployed item's
// environment, the next process start builds it again before starting.
func TestDeletedEnvironmentRebuiltOnStart(t *testing.T) {
	tests := []struct {
		name string
		// stop ends the content's processes and removes its environment;
		// it returns the test server to continue with.
		stop func(t *testing.T, ts testServer, guid string) testServer
	}{
		{"process killed, environment removed by hand", func(t *testing.T, ts testServer, guid string) testServer {
			var jobs []map[string]any
			ts.call(t, "GET", "/__api__/v1/content/"+guid+"/jobs", ts.pub, nil, &jobs)
			if len(jobs) != 1 {
				t.Fatalf("jobs: %v", jobs)
			}
			if st := ts.call(t, "DELETE", fmt.Sprintf("/__api__/v1/content/%s/jobs/%s", guid, jobs[0]["key"]), ts.pub, nil, nil); st != 200 {
				t.Fatalf("kill: %d", st)
			}
			connect.Eventually(t, "the process to exit", func() bool { return connect.RunningProcesses(ts.srv, guid) == 0 })
			for _, dir := range envDirsOf(t, ts, "3.11.2") {
				os.RemoveAll(dir)
			}
			return ts
		}},
		{"runtime cache deleted", func(t *testing.T, ts testServer, guid string) testServer {
			var del struct {
				TaskID string `json:"task_id"`
			}
			ts.call(t, "DELETE", "/__api__/v1/system/caches/runtime", ts.admin, jsonBody(map[string]any{"language": "Python", "version": "3.11.2", "image_name": "Local"}), &del)
			if task := waitTask(t, ts, del.TaskID, ts.admin); task.Code != 0 {
				t.Fatalf("delete: %+v", task)
			}
			return ts
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, fp := startPython(t, false)
			guid, _ := deployPython(t, ts, "", "app", "3.11.2", "Flask==3.0.3\n")
			ts = tt.stop(t, ts, guid)
			if dirs := envDirsOf(t, ts, "3.11.2"); len(dirs) != 0 || connect.RunningProcesses(ts.srv, guid) != 0 {
				t.Fatalf("before the start: environments %v, %d processes", dirs, connect.RunningProcesses(ts.srv, guid))
			}
			builds := fp.Builds()
			if st, body := ts.get(t, "/content/"+guid+"/", ts.pub); st != 200 {
				t.Fatalf("start: %d %s", st, body)
			}
			dirs := envDirsOf(t, ts, "3.11.2")
			if fp.Builds() != builds+1 || len(dirs) != 1 {
				t.Fatalf("builds %d (want %d), environments %v", fp.Builds(), builds+1, dirs)
			}
			if _, err := os.Stat(filepath.Join(dirs[0], ".atrium-ready")); err != nil {
				t.Errorf("the rebuilt environment is not complete: %v", err)
			}
		})
	}
}

// TestEnvironmentRebuiltAfterRestart: a server started on a data dir whose
// environment was removed builds it when the content is first requested.
func TestEnvironmentRebuiltAfterRestart(t *testing.T) {
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			cfg := pythonConfig(t, pg)
			first, stop := startStoppable(t, cfg)
			ts := addUsers(t, first)
			connect.UseFakePython(t, first.srv, "3.11.2")
			guid, _ := deployPython(t, ts, "", "app", "3.11.2", "Flask==3.0.3\n")
			stop()
			for _, dir := range envDirsOf(t, ts, "3.11.2") {
				os.RemoveAll(dir)
			}

			again := startWith(t, cfg)
			fp := connect.UseFakePython(t, again.srv, "3.11.2")
			ts.url, ts.srv = again.url, again.srv
			if st, body := ts.get(t, "/content/"+guid+"/", ts.pub); st != 200 {
				t.Fatalf("start after restart: %d %s", st, body)
			}
			if fp.Builds() != 1 || len(envDirsOf(t, ts, "3.11.2")) != 1 {
				t.Errorf("builds %d, environments %v", fp.Builds(), envDirsOf(t, ts, "3.11.2"))
			}
		})
	}
}

// TestCacheDeleteWaitsForBuild: an environment being built when its cache
// is deleted is removed only once built (the environment's lock), and the
// deploy that built it still starts its content, from an environment
// built again.
func TestCacheDeleteWaitsForBuild(t *testing.T) {
	ts, fp := startPython(t, false)
	deployPython(t, ts, "", "first", "3.11.2", "Flask==3.0.3\n")
	first := envDirsOf(t, ts, "3.11.2")
	if len(first) != 1 {
		t.Fatalf("environments %v", first)
	}

	guid := ts.newContent(t, ts.pub, "second")
	var b struct {
		ID string `json:"id"`
	}
	ts.call(t, "POST", "/__api__/v1/content/"+guid+"/bundles", ts.pub, bytes.NewReader(pythonBundle(t, "3.11.2", "Flask==3.0.2\n")), &b)
	building, release := fp.HoldNextBuild()
	t.Cleanup(release)
	var deploy struct {
		TaskID string `json:"task_id"`
	}
	ts.call(t, "POST", "/__api__/v1/content/"+guid+"/deploy", ts.pub, jsonBody(map[string]string{"bundle_id": b.ID}), &deploy)
	var env string
	select {
	case env = <-building:
	case <-time.After(30 * time.Second):
		t.Fatal("the second environment's build did not start")
	}

	var del struct {
		TaskID string `json:"task_id"`
	}
	if st := ts.call(t, "DELETE", "/__api__/v1/system/caches/runtime", ts.admin, jsonBody(map[string]any{"language": "Python", "version": "3.11.2", "image_name": "Local"}), &del); st != 200 {
		t.Fatalf("delete: %d", st)
	}
	// The delete removes the first environment, then waits for the build.
	connect.Eventually(t, "the first environment to go", func() bool {
		_, err := os.Stat(first[0])
		return os.IsNotExist(err)
	})
	var task taskStatus
	ts.call(t, "GET", "/__api__/v1/tasks/"+del.TaskID, ts.admin, nil, &task)
	if task.Finished {
		t.Fatalf("the delete finished while an environment of its version was being built: %+v", task)
	}
	if _, err := os.Stat(env); err != nil {
		t.Fatalf("the environment being built was removed: %v", err)
	}
	release()
	if task := waitTask(t, ts, del.TaskID, ts.admin); task.Code != 0 {
		t.Errorf("delete: %+v", task)
	}
	if task := waitTask(t, ts, deploy.TaskID, ts.pub); task.Code != 0 {
		t.Errorf("the deploy racing the delete failed: %+v", task)
	}
	if fp.Clobbered() != 0 {
		t.Errorf("%d environments were removed while being built", fp.Clobbered())
	}
	// Either the delete took the built environment (and stopped the
	// process the deploy had started from it) or the deploy's process
	// started from it built again; never a process without its files.
	ready := func() bool {
		_, err := os.Stat(filepath.Join(env, ".atrium-ready"))
		return err == nil
	}
	if n := connect.RunningProcesses(ts.srv, guid); n > 0 && !ready() {
		t.Errorf("%d processes run from the removed environment %s", n, env)
	}
	if st, body := ts.get(t, "/content/"+guid+"/", ts.pub); st != 200 {
		t.Fatalf("content after the delete: %d %s", st, body)
	}
	if !ready() || connect.RunningProcesses(ts.srv, guid) != 1 {
		t.Errorf("after a request: environment ready %v, %d processes", ready(), connect.RunningProcesses(ts.srv, guid))
	}
}
