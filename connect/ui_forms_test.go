package connect_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// form posts a web page's form as a browser would (it asks for HTML) with
// an API key, which the CSRF check exempts, and returns the status, the
// redirect target and the page text (unescaped, so messages compare as
// written).
func (ts testServer) form(t *testing.T, path, key string, fields map[string]string) (int, string, string) {
	t.Helper()
	v := url.Values{}
	for k, f := range fields {
		v.Set(k, f)
	}
	req, err := http.NewRequest("POST", ts.url+path, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Authorization", "Key "+key)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), html.UnescapeString(string(b))
}

// page GETs a web page as a browser with an API key.
func (ts testServer) page(t *testing.T, path, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.url+path, nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("Authorization", "Key "+key)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, html.UnescapeString(string(b))
}

// stored is what the API says about a content item's settings, to see
// what a form changed.
func (ts testServer) stored(t *testing.T, guid string) string {
	t.Helper()
	var c map[string]any
	if st := ts.call(t, "GET", "/__api__/v1/content/"+guid+"?include=vanity_url", ts.admin, nil, &c); st != 200 {
		t.Fatalf("get content: %d", st)
	}
	var env []string
	ts.call(t, "GET", "/__api__/v1/content/"+guid+"/environment", ts.admin, nil, &env)
	var perms []map[string]any
	ts.call(t, "GET", "/__api__/v1/content/"+guid+"/permissions", ts.admin, nil, &perms)
	var roles []string
	for _, p := range perms {
		roles = append(roles, fmt.Sprint(p["principal_type"], ":", p["role"]))
	}
	return fmt.Sprintf("access=%v min=%v max=%v conns=%v load=%v idle=%v init=%v vanity=%v env=%v perms=%v",
		c["access_type"], c["min_processes"], c["max_processes"], c["max_conns_per_process"], c["load_factor"],
		c["idle_timeout"], c["init_timeout"], c["vanity_url"], env, roles)
}

// alert is the text of the page's error message next to a form.
func alert(page string) string {
	_, rest, ok := strings.Cut(page, `<p class="error" role="alert">`)
	if !ok {
		return ""
	}
	msg, _, _ := strings.Cut(rest, "</p>")
	return msg
}

// runtimeFields is the runtime form with every field empty (the server's
// defaults) but those given.
func runtimeFields(set map[string]string) map[string]string {
	f := map[string]string{"min_processes": "", "max_processes": "", "max_conns_per_process": "", "load_factor": "", "idle_timeout": "", "init_timeout": ""}
	for k, v := range set {
		f[k] = v
	}
	return f
}

// TestUIFormsRefuseBadInput: every settings form refuses what the API
// refuses, with the API's message on the page and nothing changed.
func TestUIFormsRefuseBadInput(t *testing.T) {
	ts := start(t, false)
	guid := ts.newContent(t, ts.pub, "ui-forms")
	other := ts.newContent(t, ts.other, "ui-other")
	if st, loc, body := ts.form(t, "/connect/apps/"+other+"/settings/vanity", ts.other, map[string]string{"path": "/taken/"}); st != http.StatusSeeOther {
		t.Fatalf("setting the other item's vanity: %d %s %s", st, loc, body)
	}
	settings := "/connect/apps/" + guid + "/settings"
	for _, tc := range []struct {
		name   string
		path   string
		fields map[string]string
		status int
		msg    string
		keep   string // what the form shows again to be corrected
	}{
		{"min above max", "/runtime", runtimeFields(map[string]string{"min_processes": "5", "max_processes": "2"}), 400, "min_processes (5) must not be more than max_processes (2)", `name="min_processes" value="5"`},
		{"max out of range", "/runtime", runtimeFields(map[string]string{"min_processes": "1", "max_processes": "0"}), 400, "max_processes must be between 1 and 64", ""},
		{"min not a number", "/runtime", runtimeFields(map[string]string{"min_processes": "two", "max_processes": "3"}), 400, "min_processes must be a whole number", ""},
		{"load factor above 1", "/runtime", runtimeFields(map[string]string{"min_processes": "1", "load_factor": "1.5"}), 400, "load_factor must be between 0 and 1", ""},
		{"unknown access type", "/access", map[string]string{"access_type": "everyone"}, 400, "access_type must be one of all, logged_in, acl", ""},
		{"reserved vanity", "/vanity", map[string]string{"path": "/connect/mine/"}, 400, `vanity path "/connect/mine/" is reserved by Connect`, `name="path" value="/connect/mine/"`},
		{"vanity with a space", "/vanity", map[string]string{"path": "/my app/"}, 400, "may only contain letters, digits", ""},
		{"vanity of other content", "/vanity", map[string]string{"path": "/taken/"}, 409, "vanity path /taken/ is in use by (or overlaps) another content item's", ""},
		{"vanity force by a publisher", "/vanity", map[string]string{"path": "/taken/", "force": "1"}, 403, "only admins may take a vanity URL", ""},
		{"env name starting with a digit", "/environment", map[string]string{"name": "1TOKEN", "value": "x"}, 400, `environment variable name "1TOKEN" must be letters`, `name="name" value="1TOKEN"`},
		{"env name with a dash", "/environment", map[string]string{"name": "MY-TOKEN", "value": "x"}, 400, `environment variable name "MY-TOKEN" must be letters`, ""},
		{"env value too long", "/environment", map[string]string{"name": "BIG", "value": strings.Repeat("x", 64<<10+1)}, 400, "the value of BIG is longer than 65536 bytes", ""},
		{"permission for nobody", "/permissions", map[string]string{"principal_type": "user", "principal": "nobody", "role": "viewer"}, 400, `there is no user named "nobody"`, `name="principal" value="nobody"`},
		{"viewer as owner", "/permissions", map[string]string{"principal_type": "user", "principal": "viewer", "role": "owner"}, 400, "viewer has the viewer role and cannot be an owner", ""},
		{"unknown role", "/permissions", map[string]string{"principal_type": "user", "principal": "other", "role": "editor"}, 400, "role must be viewer or owner", ""},
		{"unknown group", "/permissions", map[string]string{"principal_type": "group", "principal": "sales", "role": "viewer"}, 400, `there is no group named "sales"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.stored(t, guid)
			st, _, body := ts.form(t, settings+tc.path, ts.pub, tc.fields)
			if st != tc.status {
				t.Errorf("status %d, want %d", st, tc.status)
			}
			if got := alert(body); !strings.Contains(got, tc.msg) {
				t.Errorf("the page shows %q, not %q, next to the form", got, tc.msg)
			}
			if !strings.Contains(body, tc.keep) {
				t.Errorf("the form does not show %s again", tc.keep)
			}
			// The page is the settings page again, with its forms.
			if !strings.Contains(body, `id="runtime-form"`) {
				t.Errorf("the refusal is not the settings page")
			}
			if after := ts.stored(t, guid); after != before {
				t.Errorf("a refused form changed the content:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestUIFormsChangeSettings: good input is stored (as the API then
// reports it) and confirmed on the page; values of variables are never
// shown.
func TestUIFormsChangeSettings(t *testing.T) {
	ts := start(t, false)
	guid := ts.newContent(t, ts.pub, "ui-settings")
	settings := "/connect/apps/" + guid + "/settings"
	steps := []struct {
		path   string
		fields map[string]string
		done   string
		want   string // in stored()
	}{
		{"/access", map[string]string{"access_type": "logged_in"}, "access", "access=logged_in "},
		{"/runtime", runtimeFields(map[string]string{"min_processes": "1", "max_processes": "2", "load_factor": "0.25", "idle_timeout": "30"}), "runtime", "min=1 max=2 conns=<nil> load=0.25 idle=30 init=<nil>"},
		{"/environment", map[string]string{"name": "API_TOKEN", "value": "s3cret-value"}, "env", "env=[API_TOKEN]"},
		{"/vanity", map[string]string{"path": "ui-settings"}, "vanity", "/ui-settings/ env="},
		{"/permissions", map[string]string{"principal_type": "user", "principal": "viewer", "role": "viewer"}, "permission", "perms=[user:viewer]"},
		// The same principal again changes its role rather than failing.
		{"/permissions", map[string]string{"principal_type": "user", "principal": "other", "role": "viewer"}, "permission", "perms=[user:viewer user:viewer]"},
		{"/permissions", map[string]string{"principal_type": "user", "principal": "other", "role": "owner"}, "permission", "perms=[user:viewer user:owner]"},
		// Empty fields go back to the server's defaults.
		{"/runtime", runtimeFields(nil), "runtime", "min=<nil> max=<nil> conns=<nil> load=<nil> idle=<nil> init=<nil>"},
	}
	for _, step := range steps {
		st, loc, body := ts.form(t, settings+step.path, ts.pub, step.fields)
		if st != http.StatusSeeOther || !strings.HasPrefix(loc, settings+"?done="+step.done) {
			t.Fatalf("POST %s: %d %q\n%s", step.path, st, loc, body)
		}
		if got := ts.stored(t, guid); !strings.Contains(got, step.want) {
			t.Errorf("after %s %v: stored %s, want %s", step.path, step.fields, got, step.want)
		}
	}
	st, body := ts.page(t, settings+"?done=env", ts.pub)
	if st != 200 || !strings.Contains(body, "API_TOKEN") || !strings.Contains(body, "Variable saved") {
		t.Errorf("settings page: %d, variable or confirmation missing", st)
	}
	if strings.Contains(body, "s3cret-value") {
		t.Error("the settings page shows a variable's value")
	}
	// The server's defaults are shown next to the empty fields.
	if !strings.Contains(body, `placeholder="3"`) || !strings.Contains(body, "default 3;") {
		t.Error("the runtime form does not show the server's default max_processes (3)")
	}

	// The collaborator (owner permission) may manage it; a viewer with a
	// permission may only look, and someone without one learns nothing.
	if st, _, _ := ts.form(t, settings+"/environment/delete", ts.other, map[string]string{"name": "API_TOKEN"}); st != http.StatusSeeOther {
		t.Errorf("collaborator removing a variable: %d", st)
	}
	if got := ts.stored(t, guid); !strings.Contains(got, "env=[]") {
		t.Errorf("variable not removed: %s", got)
	}
	if st, _, _ := ts.form(t, settings+"/access", ts.viewer, map[string]string{"access_type": "all"}); st != http.StatusForbidden {
		t.Errorf("viewer changing access: %d, want 403", st)
	}
	if st, _ := ts.page(t, settings, ts.viewer); st != http.StatusForbidden {
		t.Errorf("viewer opening settings: %d, want 403", st)
	}
	if st, body := ts.page(t, "/connect/apps/"+guid+"/", ts.viewer); st != 200 || strings.Contains(body, `href="/connect/apps/`+guid+`/settings"`) {
		t.Errorf("viewer's app page: %d (or it links to the settings)", st)
	}
	stranger := ts.newContent(t, ts.other, "ui-stranger")
	if st, _, _ := ts.form(t, "/connect/apps/"+stranger+"/settings/access", ts.pub, map[string]string{"access_type": "all"}); st != http.StatusNotFound {
		t.Errorf("changing someone else's content: %d, want 404", st)
	}

	// Removing the vanity URL.
	if st, _, _ := ts.form(t, settings+"/vanity/delete", ts.pub, nil); st != http.StatusSeeOther {
		t.Errorf("remove vanity: %d", st)
	}
	if got := ts.stored(t, guid); !strings.Contains(got, "vanity=<nil>") {
		t.Errorf("vanity not removed: %s", got)
	}
}

// TestUIDashboardAndLogs: the dashboard lists what the caller may see and
// searches it; a deploy started from the page runs and its log is served
// to the page's script.
func TestUIDashboardAndLogs(t *testing.T) {
	forEachDialect(t, testUIDashboardAndLogs)
}

func testUIDashboardAndLogs(t *testing.T, ts testServer) {
	guid := ts.newContent(t, ts.pub, "quarterly-report")
	ts.newContent(t, ts.other, "secret-plans")
	var b map[string]any
	if st := ts.call(t, "POST", "/__api__/v1/content/"+guid+"/bundles", ts.pub, bytes.NewReader(tarball(t, map[string]string{
		"manifest.json": staticManifest, "index.html": "<h1>Q3</h1>",
	})), &b); st != 200 {
		t.Fatalf("upload: %d", st)
	}
	if task := deployAndWait(t, ts, guid, `{}`); task.Code != 0 {
		t.Fatalf("deploy: %+v", task)
	}

	for _, tc := range []struct {
		who, key, query string
		want, notWant   []string
	}{
		{"publisher", ts.pub, "", []string{"quarterly-report", "Static site", "Publish", "rsconnect add -s http://"}, []string{"secret-plans"}},
		{"admin", ts.admin, "", []string{"quarterly-report", "secret-plans"}, nil},
		{"admin searching", ts.admin, "?q=QUARTER", []string{"quarterly-report"}, []string{"secret-plans"}},
		{"admin searching for nothing", ts.admin, "?q=zzz", []string{"No content matches “zzz”"}, []string{"quarterly-report"}},
		{"viewer", ts.viewer, "", []string{"Nothing published yet"}, []string{"quarterly-report", "rsconnect add"}},
	} {
		st, body := ts.page(t, "/connect/"+tc.query, tc.key)
		if st != 200 {
			t.Errorf("%s: dashboard %d", tc.who, st)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: dashboard lacks %q", tc.who, w)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(body, w) {
				t.Errorf("%s: dashboard shows %q", tc.who, w)
			}
		}
	}

	// The app page frames the content; the logs tab shows the deploy.
	if st, body := ts.page(t, "/connect/apps/"+guid+"/", ts.pub); st != 200 || !strings.Contains(body, `<iframe class="app" id="app-frame" src="/content/`+guid+`/"`) {
		t.Errorf("app page: %d\n%s", st, body)
	}
	st, body := ts.page(t, "/connect/apps/"+guid+"/logs", ts.pub)
	if st != 200 || !strings.Contains(body, "Activated bundle") || !strings.Contains(body, `class="badge succeeded">succeeded`) {
		t.Errorf("logs page: %d\n%s", st, body)
	}

	// Redeploy from the page: it redirects to the task's log, and the
	// script's endpoint streams it to the end.
	st, loc, body := ts.form(t, "/connect/apps/"+guid+"/bundles/"+fmt.Sprint(b["id"])+"/deploy", ts.pub, nil)
	if st != http.StatusSeeOther || !strings.Contains(loc, "/logs?task=") {
		t.Fatalf("deploy from the page: %d %s\n%s", st, loc, body)
	}
	task := strings.TrimSuffix(strings.SplitN(loc, "task=", 2)[1], "#log")
	var lines []string
	first := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out struct {
			Lines    []string `json:"lines"`
			Last     int      `json:"last"`
			Finished bool     `json:"finished"`
			Status   string   `json:"status"`
		}
		if st := ts.call(t, "GET", fmt.Sprintf("/connect/apps/%s/tasks/%s?first=%d&wait=2", guid, task, first), ts.pub, nil, &out); st != 200 {
			t.Fatalf("task output: %d", st)
		}
		lines, first = append(lines, out.Lines...), out.Last
		if out.Finished {
			if out.Status != "succeeded" || !strings.Contains(strings.Join(lines, "\n"), "Activated bundle") {
				t.Errorf("redeploy: %s %q", out.Status, lines)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the redeploy did not finish in 30 s")
		}
	}
	// Another item's task is not readable through this item.
	other := ts.newContent(t, ts.pub, "other-item")
	var e map[string]any
	if st := ts.call(t, "GET", "/connect/apps/"+other+"/tasks/"+task, ts.pub, nil, &e); st != 404 {
		t.Errorf("a task through another item: %d", st)
	}
	raw, _ := json.Marshal(e)
	if !strings.Contains(string(raw), "task not found") {
		t.Errorf("error body %s", raw)
	}
}
