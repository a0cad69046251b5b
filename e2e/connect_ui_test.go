package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// shoot saves a full-page screenshot as e2e/.screenshots/connect-ui-NAME.png.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var shot []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&shot, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(screenshotDir(t), "connect-ui-"+name+".png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// browserUntil waits (in the page, with chromedp.Poll) until the
// JavaScript expression expr is truthy, and fails the test at the
// deadline with what the page says.
func browserUntil(t *testing.T, ctx context.Context, what, expr string, within time.Duration) {
	t.Helper()
	var ok bool
	if err := chromedp.Run(ctx, chromedp.Poll("!!("+expr+")", &ok, chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		var body string
		chromedp.Run(ctx, chromedp.Text("main", &body, chromedp.ByQuery))
		t.Fatalf("waiting for %s: %v; the page says:\n%s", what, err, body)
	}
}

// eventually checks cond every 200 ms until it holds, and fails the test
// after within.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", within, what)
		case <-tick.C:
		}
	}
}

// contentJSON is GET /__api__/v1/content/{guid} as a map.
func contentJSON(t *testing.T, url, key, guid string) map[string]any {
	t.Helper()
	status, body := keyGet(t, url+"/__api__/v1/content/"+guid+"?include=vanity_url", key)
	var c map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("GET content %s: %d %s", guid, status, body)
	}
	return c
}

// waitTask polls a task until it finishes and returns its whole output.
func waitTask(t *testing.T, url, key, id string) (string, int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		status, body := keyGet(t, url+"/__api__/v1/tasks/"+id+"?wait=5", key)
		var task struct {
			Output   []string `json:"output"`
			Finished bool     `json:"finished"`
			Code     int      `json:"code"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &task) != nil {
			t.Fatalf("task %s: %d %s", id, status, body)
		}
		if task.Finished {
			return strings.Join(task.Output, "\n"), task.Code
		}
	}
	t.Fatalf("task %s did not finish in 2 minutes", id)
	return "", 0
}

// TestConnectUI is the web UI's story in a real Chromium: an admin signs
// in through the suite's provider, finds a static site on the dashboard,
// searches, opens its page (the site in a frame), changes its access,
// runtime settings, environment and vanity URL (checked through the API),
// reads its deploy log and redeploys it with the log following live; then
// creates an API key on the keys page, adds the server to rsconnect with it,
// deploys a FastAPI app with the real rsconnect CLI, sees its running
// process with its pid and stops it from the page.
func TestConnectUI(t *testing.T) {
	chromium(t)
	connectClients(t)
	tools := pyTools(t) // uv, which Connect builds environments with
	p, dataDir := suiteWithIdentity(t,
		"ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM=", // FastAPI comes from the host pip's index
		"PATH="+filepath.Join(tools, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	url := p.urls["Connect"]
	key := regexp.MustCompile(`atr_\S+`).FindString(atriumCLI(t, dataDir, "", "users", "token", "admin", "--product", "connect"))
	atriumCLI(t, dataDir, "", "users", "add", "alice", "--role", "viewer", "--name", "Alice Liddell")
	pw, err := os.ReadFile(filepath.Join(dataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}

	// A static site, through the API (no Python needed).
	status, body := keyPost(t, url+"/__api__/v1/content", key, `{"name":"quarterly","title":"Quarterly numbers","description":"Sales by quarter."}`)
	var item struct {
		GUID string `json:"guid"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &item) != nil {
		t.Fatalf("create content: %d %s", status, body)
	}
	guid := item.GUID
	req, _ := http.NewRequest("POST", url+"/__api__/v1/content/"+guid+"/bundles", bytes.NewReader(staticBundle(t, map[string]string{
		"manifest.json": `{"version":1,"metadata":{"appmode":"static","primary_html":"index.html","entrypoint":"index.html"},"files":{"index.html":{"checksum":"x"}}}`,
		"index.html":    "<h1>Q3 is up 12%</h1>",
	})))
	req.Header.Set("Authorization", "Key "+key)
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload bundle: %v %v", err, resp)
	}
	resp.Body.Close()
	status, body = keyPost(t, url+"/__api__/v1/content/"+guid+"/deploy", key, `{}`)
	var started struct {
		TaskID string `json:"task_id"`
	}
	if status != 200 || json.Unmarshal([]byte(body), &started) != nil {
		t.Fatalf("deploy: %d %s", status, body)
	}
	if out, code := waitTask(t, url, key, started.TaskID); code != 0 {
		t.Fatalf("static deploy failed:\n%s", out)
	}

	ctx := browser(t, 8*time.Minute)
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var page string
			chromedp.Run(ctx, chromedp.Text("body", &page, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage:\n%s", what, err, page)
		}
	}
	text := func(sel string) string {
		t.Helper()
		var s string
		run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
		return s
	}

	// Sign in through the provider, landing on the dashboard.
	run("sign in",
		chromedp.Navigate(url+"/connect/"),
		chromedp.WaitVisible(`input[name="username"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="username"]`, "admin", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, strings.TrimSpace(string(pw)), chromedp.ByQuery),
		chromedp.Submit(`input[name="password"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#content-list`, chromedp.ByQuery),
	)
	if list := text("#content-list"); !strings.Contains(list, "Quarterly numbers") || !strings.Contains(list, "Static site") || !strings.Contains(list, "admin") {
		t.Errorf("dashboard list: %q", list)
	}
	if pub := text("main"); !strings.Contains(pub, "rsconnect add -s "+url) {
		t.Errorf("the dashboard does not tell the admin how to publish to %s", url)
	}
	shoot(t, ctx, "dashboard")

	// Search: by title, and for nothing.
	run("search",
		chromedp.SetValue(`input[name="q"]`, "QUARTER", chromedp.ByQuery),
		chromedp.Submit(`input[name="q"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`a[href="/connect/"]`, chromedp.ByQuery), // "Clear" shows after a search
	)
	if list := text("#content-list"); !strings.Contains(list, "Quarterly numbers") {
		t.Errorf("search for QUARTER: %q", list)
	}
	run("search for nothing",
		chromedp.SetValue(`input[name="q"]`, "no-such-thing", chromedp.ByQuery),
		chromedp.Submit(`input[name="q"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`#content-list`, chromedp.ByQuery),
	)
	if m := text("main"); !strings.Contains(m, "No content matches") {
		t.Errorf("search for nothing: %q", m)
	}

	// Posit Connect's dashboard link (contentJSON's dashboard_url) leads
	// to the item's page, where the site shows in a frame.
	dash, _ := contentJSON(t, url, key, guid)["dashboard_url"].(string)
	var loc string
	run("dashboard_url",
		chromedp.Navigate(dash),
		chromedp.WaitVisible(`#app-frame`, chromedp.ByQuery),
		chromedp.Location(&loc),
	)
	if loc != url+"/connect/apps/"+guid+"/" {
		t.Errorf("%s led to %s", dash, loc)
	}
	browserUntil(t, ctx, "the site in the frame",
		`(function(){var d=document.getElementById("app-frame").contentDocument;return d&&d.body&&d.body.innerText.indexOf("Q3 is up 12%")>=0})()`, 30*time.Second)
	// A Posit Connect tab link leads to the matching tab.
	run("dashboard tab link", chromedp.Navigate(url+"/connect/#/apps/"+guid+"/logs"), chromedp.WaitVisible(`#bundles`, chromedp.ByQuery), chromedp.Location(&loc))
	if loc != url+"/connect/apps/"+guid+"/logs" {
		t.Errorf("the logs link led to %s", loc)
	}
	run("app page again", chromedp.Navigate(url+"/connect/apps/"+guid+"/"), chromedp.WaitVisible(`#app-frame`, chromedp.ByQuery))
	if facts := text("table.facts"); !strings.Contains(facts, "/content/"+guid+"/") || !strings.Contains(facts, "Specific users") {
		t.Errorf("facts: %q", facts)
	}
	shoot(t, ctx, "app")

	settings := url + "/connect/apps/" + guid + "/settings"
	// submit opens the settings page, fills a form and waits for the
	// confirmation (or, with bad input, the error) next to it.
	submit := func(what, form string, wait string, fill ...chromedp.Action) string {
		t.Helper()
		actions := append([]chromedp.Action{chromedp.Navigate(settings), chromedp.WaitVisible(form, chromedp.ByQuery)}, fill...)
		actions = append(actions, chromedp.Click(form+` button[type="submit"]`, chromedp.ByQuery), chromedp.WaitVisible(wait, chromedp.ByQuery))
		run(what, actions...)
		return text(wait)
	}
	const done, refused = `p.ok[role="status"]`, `p.error[role="alert"]`

	// Access: all signed-in users.
	submit("access", "#access-form", done, chromedp.Click(`input[name="access_type"][value="logged_in"]`, chromedp.ByQuery))
	if c := contentJSON(t, url, key, guid); c["access_type"] != "logged_in" {
		t.Errorf("access_type after the form: %v", c["access_type"])
	}
	// A viewer permission for alice.
	submit("permission", "#permission-form", done,
		chromedp.SendKeys(`#permission-form input[name="principal"]`, "alice", chromedp.ByQuery))
	if l := text("#permissions-list"); !strings.Contains(l, "alice") || !strings.Contains(l, "viewer") {
		t.Errorf("permissions: %q", l)
	}
	status, body = keyGet(t, url+"/__api__/v1/content/"+guid+"/permissions", key)
	if status != 200 || !strings.Contains(body, `"role":"viewer"`) {
		t.Errorf("permissions through the API: %d %s", status, body)
	}

	// Runtime: min above max is refused on the page and changes nothing.
	msg := submit("bad runtime", "#runtime-form", refused,
		chromedp.SetValue(`#f-min_processes`, "3", chromedp.ByQuery),
		chromedp.SetValue(`#f-max_processes`, "2", chromedp.ByQuery))
	if !strings.Contains(msg, "min_processes (3) must not be more than max_processes (2)") {
		t.Errorf("bad runtime message: %q", msg)
	}
	shoot(t, ctx, "settings-refused")
	if c := contentJSON(t, url, key, guid); c["min_processes"] != nil || c["max_processes"] != nil {
		t.Errorf("a refused form changed min/max: %v %v", c["min_processes"], c["max_processes"])
	}
	submit("runtime", "#runtime-form", done,
		chromedp.SetValue(`#f-min_processes`, "1", chromedp.ByQuery),
		chromedp.SetValue(`#f-max_processes`, "2", chromedp.ByQuery))
	if c := contentJSON(t, url, key, guid); c["min_processes"] != 1.0 || c["max_processes"] != 2.0 {
		t.Errorf("min/max after the form: %v %v", c["min_processes"], c["max_processes"])
	}

	// An environment variable: its name is listed, its value never shown.
	submit("env", "#env-form", done,
		chromedp.SendKeys(`#env-form input[name="name"]`, "REPORT_TOKEN", chromedp.ByQuery),
		chromedp.SendKeys(`#env-form input[name="value"]`, "tok-5ecret", chromedp.ByQuery))
	if l := text("#env-list"); !strings.Contains(l, "REPORT_TOKEN") {
		t.Errorf("env list: %q", l)
	}
	var html string
	run("page html", chromedp.OuterHTML("html", &html, chromedp.ByQuery))
	if strings.Contains(html, "tok-5ecret") {
		t.Error("the settings page shows the variable's value")
	}
	if status, body := keyGet(t, url+"/__api__/v1/content/"+guid+"/environment", key); status != 200 || !strings.Contains(body, "REPORT_TOKEN") {
		t.Errorf("environment through the API: %d %s", status, body)
	}

	// A vanity URL, which then serves the site.
	submit("vanity", "#vanity-form", done,
		chromedp.SetValue(`#vanity-form input[name="path"]`, "/quarterly-numbers/", chromedp.ByQuery))
	if v, _ := contentJSON(t, url, key, guid)["vanity_url"].(string); v != url+"/quarterly-numbers/" {
		t.Errorf("vanity_url after the form: %q", v)
	}
	shoot(t, ctx, "settings")
	run("vanity page", chromedp.Navigate(url+"/quarterly-numbers/"), chromedp.WaitVisible("h1", chromedp.ByQuery))
	if h := text("h1"); h != "Q3 is up 12%" {
		t.Errorf("vanity URL shows %q", h)
	}

	// The deploy log, then a redeploy from the page whose log the page
	// follows until the task ends.
	run("logs", chromedp.Navigate(url+"/connect/apps/"+guid+"/logs"), chromedp.WaitVisible(`#task-log`, chromedp.ByQuery))
	if l := text("#task-log"); !strings.Contains(l, "Activated bundle") {
		t.Errorf("deploy log: %q", l)
	}
	if s := text("#task-status"); s != "succeeded" {
		t.Errorf("task status %q", s)
	}
	shoot(t, ctx, "logs")

	// An API key made in the browser is what rsconnect add takes.
	run("create an API key",
		chromedp.Navigate(url+"/__auth__/keys"),
		chromedp.WaitVisible(`input[name="name"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="name"]`, "rsconnect on my laptop", chromedp.ByQuery),
		chromedp.Click(`form[action="/__auth__/keys"] button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`pre`, chromedp.ByQuery))
	uiKey := strings.TrimSpace(text("pre"))
	if !strings.HasPrefix(uiKey, "atr_") {
		t.Fatalf("the keys page shows %q, not a new key", uiKey)
	}
	shoot(t, ctx, "api-key")

	// FastAPI with the real rsconnect CLI: a process runs, with a pid.
	home := t.TempDir()
	if out, ok := rsconnectCLI(t, home, "add", "-s", url, "-n", "atrium", "-k", uiKey); !ok || !strings.Contains(out, "Added Connect server") {
		t.Fatal("rsconnect add with the key made in the browser failed")
	}
	out, ok := rsconnectCLI(t, home, "deploy", "fastapi", "-n", "atrium", "--title", "Greeter API", copyDir(t, filepath.Join(repoRoot(t), "e2e", "testdata", "connect", "fastapi")))
	if !ok {
		t.Fatal("rsconnect deploy fastapi failed")
	}
	m := contentURLPattern.FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no content URL in rsconnect's output")
	}
	api := filepath.Base(strings.TrimSuffix(m[1], "/"))
	appPage := url + "/connect/apps/" + api + "/"

	// An API gets a link, not a frame.
	run("api page", chromedp.Navigate(appPage), chromedp.WaitVisible(`#app-link`, chromedp.ByQuery))
	var frames int
	run("frames", chromedp.Evaluate(`document.querySelectorAll("iframe").length`, &frames))
	if frames != 0 {
		t.Errorf("the API's page has %d frames", frames)
	}
	shoot(t, ctx, "api")

	// Its Python and what its environment has installed, from the real
	// uv build: folded until asked for.
	var python, pkgs string
	run("python version", chromedp.Text(`#python-version`, &python, chromedp.ByQuery))
	if !regexp.MustCompile(`^3\.\d+\.\d+$`).MatchString(python) {
		t.Errorf("the API's page says Python %q", python)
	}
	run("packages", chromedp.Click(`#packages summary`, chromedp.ByQuery),
		chromedp.WaitVisible(`#packages table`, chromedp.ByQuery), chromedp.Text(`#packages table`, &pkgs, chromedp.ByQuery))
	for _, want := range []string{"fastapi", "uvicorn"} {
		if !strings.Contains(pkgs, want) {
			t.Errorf("the API's packages do not list %s: %q", want, pkgs)
		}
	}
	shoot(t, ctx, "api-packages")

	jobs := func() []map[string]any {
		t.Helper()
		status, body := keyGet(t, url+"/__api__/v1/content/"+api+"/jobs", key)
		var list []map[string]any
		if status != 200 || json.Unmarshal([]byte(body), &list) != nil {
			t.Fatalf("jobs: %d %s", status, body)
		}
		return list
	}
	var active map[string]any
	eventually(t, "a running process after the redeploy", time.Minute, func() bool {
		for _, j := range jobs() {
			if j["status"] == 0.0 {
				active = j
			}
		}
		return active != nil
	})
	run("processes", chromedp.Navigate(appPage+"processes"), chromedp.WaitVisible(`#procs`, chromedp.ByQuery))
	procs := text("#procs")
	if !strings.Contains(procs, fmt.Sprint(active["key"])) || !strings.Contains(procs, fmt.Sprint(active["pid"])) || active["pid"] == "0" {
		t.Errorf("processes table %q lacks the running job %v (pid %v)", procs, active["key"], active["pid"])
	}
	shoot(t, ctx, "processes")

	// The process's own log.
	run("job log",
		chromedp.Click(`#procs a`, chromedp.ByQuery),
		chromedp.WaitVisible(`#job-log`, chromedp.ByQuery),
	)
	browserUntil(t, ctx, "the process's log", `document.getElementById("job-log").textContent.indexOf("Application startup complete") >= 0`, 30*time.Second)
	shoot(t, ctx, "job")

	// Stop it from the page: its job ends.
	run("stop",
		chromedp.Navigate(appPage+"processes"),
		chromedp.WaitVisible(`#procs`, chromedp.ByQuery),
		chromedp.Click(`#procs button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.ok[role="status"]`, chromedp.ByQuery),
	)
	shoot(t, ctx, "processes-stop")
	eventually(t, "the stopped process's job to end", 30*time.Second, func() bool {
		for _, j := range jobs() {
			if j["key"] == active["key"] && j["status"] == 1.0 {
				return true
			}
		}
		return false
	})
	run("processes after stop", chromedp.Navigate(appPage+"processes"), chromedp.WaitVisible(`#jobs`, chromedp.ByQuery))
	if j := text("#jobs"); !strings.Contains(j, "finished") {
		t.Errorf("recent processes after Stop: %q", j)
	}
	shoot(t, ctx, "processes-stopped")

	// A deploy that takes a while (the app sleeps before it starts): the
	// page shows it running and follows its log to the end, without a
	// reload.
	slowDir := filepath.Join(t.TempDir(), "slow")
	if err := os.MkdirAll(slowDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"app.py":           "import time\n\nprint('warming up', flush=True)\ntime.sleep(4)\n\nfrom fastapi import FastAPI\n\napp = FastAPI()\n\n\n@app.get('/')\ndef root():\n    return {'slow': True}\n",
		"requirements.txt": "fastapi\n", // as the sample's: its environment is reused
	} {
		if err := os.WriteFile(filepath.Join(slowDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, ok = rsconnectCLI(t, home, "deploy", "fastapi", "-n", "atrium", "--title", "Slow starter", slowDir)
	if m = contentURLPattern.FindStringSubmatch(out); !ok || m == nil {
		t.Fatal("rsconnect deploy of the slow app failed")
	}
	slowPage := url + "/connect/apps/" + filepath.Base(strings.TrimSuffix(m[1], "/")) + "/"
	var atLoad, logAtLoad string
	run("redeploy",
		chromedp.Navigate(slowPage+"logs"),
		chromedp.WaitVisible(`#bundles`, chromedp.ByQuery),
		// Mark this page, so the wait below is for the next one.
		chromedp.Evaluate(`document.body.dataset.before = "1"`, nil),
		chromedp.Click(`#bundles button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`body:not([data-before]) #task-status`, chromedp.ByQuery),
		chromedp.Text(`#task-status`, &atLoad, chromedp.ByQuery),
		chromedp.Text(`#task-log`, &logAtLoad, chromedp.ByQuery),
	)
	if atLoad != "running" {
		t.Errorf("the redeploy's page shows it %q, not running", atLoad)
	}
	if strings.Contains(logAtLoad, "Activated bundle") {
		t.Fatalf("the slow deploy was done when its page loaded:\n%s", logAtLoad)
	}
	browserUntil(t, ctx, "the progress line", `/running \d+ s, \d+ lines/.test(document.getElementById("task-progress").textContent)`, 10*time.Second)
	shoot(t, ctx, "logs-live")
	browserUntil(t, ctx, "the redeploy to succeed on the page",
		`document.getElementById("task-status").textContent == "succeeded" && document.getElementById("task-log").textContent.indexOf("Activated bundle") >= 0`, 2*time.Minute)
	// The task's row among the recent ones follows too.
	if b := text("#tasks .badge"); b != "succeeded" {
		t.Errorf("the recent tasks list says %q", b)
	}
	if l := text("#task-log"); !strings.Contains(l, "Application startup complete") || !strings.HasPrefix(l, logAtLoad) {
		t.Errorf("the live log is not the log at load followed by the rest:\nat load:\n%s\nnow:\n%s", logAtLoad, l)
	}
	shoot(t, ctx, "logs-done")
}
