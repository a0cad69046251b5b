package connect_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/connect"
	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
	"github.com/atrium-suite/atrium/shared/platform"
)

// testServer is Connect running in-process with a few users' API keys.
type testServer struct {
	url                       string
	admin, pub, other, viewer string // API keys
	adminID                   string
	// For the SDK tests: the server and the other users' ids.
	srv                      *connect.Server
	pubID, otherID, viewerID string
}

// start runs Connect on a free port: SQLite, or PostgreSQL in a fresh
// database of $ATRIUM_TEST_POSTGRES_DSN (Connect's schema name is fixed, so
// each test needs its own database).
func start(t *testing.T, postgres bool) testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	if postgres {
		cfg.Shared.DatabaseURL = dbtest.FreshDatabase(t)
	}
	return addUsers(t, startWith(t, cfg))
}

// addUsers adds the test's users (an admin, two publishers, a viewer) with
// Connect API keys.
func addUsers(t *testing.T, ts testServer) testServer {
	t.Helper()
	ctx := context.Background()
	s := ts.srv
	key := func(username string, role accounts.Role) (string, string) {
		u, err := s.Accounts.AddUser(ctx, accounts.NewUser{Username: username, Name: "Ada " + username, Email: username + "@example.org", Role: role})
		if err != nil {
			t.Fatal(err)
		}
		k, _, err := s.Accounts.CreateAPIKey(ctx, u.ID, "test", config.Connect, nil)
		if err != nil {
			t.Fatal(err)
		}
		return k, u.ID
	}
	ts.admin, ts.adminID = key("boss", accounts.RoleAdmin)
	ts.pub, ts.pubID = key("pub", accounts.RolePublisher)
	ts.other, ts.otherID = key("other", accounts.RolePublisher)
	ts.viewer, ts.viewerID = key("viewer", accounts.RoleViewer)
	return ts
}

// startWith runs Connect with cfg on a free port until the test ends.
func startWith(t *testing.T, cfg config.Config) testServer {
	t.Helper()
	ts, stop := startStoppable(t, cfg)
	t.Cleanup(stop)
	return ts
}

// startStoppable runs Connect with cfg on a free port until stop is
// called, for a test that stops it midway (stop must be called once).
func startStoppable(t *testing.T, cfg config.Config) (testServer, func()) {
	t.Helper()
	cfg.Connect.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	s, err := connect.New(ctx, cfg, platform.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return testServer{url: "http://" + s.HTTP.Addr().String(), srv: s}, func() {
		cancel()
		<-done
	}
}

// forEachDialect runs fn against SQLite and PostgreSQL (skipped without
// the DSN locally, as dbtest does).
func forEachDialect(t *testing.T, fn func(t *testing.T, ts testServer)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, start(t, false)) })
	t.Run("postgres", func(t *testing.T) { fn(t, start(t, true)) })
}

// call does an API request and decodes a JSON answer into out (if not nil).
func (ts testServer) call(t *testing.T, method, path, key string, body io.Reader, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Key "+key)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %v\n%s", method, path, resp.StatusCode, err, data)
		}
	}
	return resp.StatusCode
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// apiErr is the decoded body of an error: its keys, to see that code,
// error and payload are all there (payload is null).
type apiErr map[string]json.RawMessage

// wantErr checks the status and that the body is {code, error, payload}
// with the code and a message containing msg.
func wantErr(t *testing.T, what string, status, wantStatus int, e apiErr, code int, msg string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("%s: status %d, want %d", what, status, wantStatus)
	}
	_, hasPayload := e["payload"]
	var gotCode int
	var gotMsg string
	if json.Unmarshal(e["code"], &gotCode) != nil || json.Unmarshal(e["error"], &gotMsg) != nil || !hasPayload {
		t.Errorf("%s: body is not {code, error, payload}: %s", what, e)
		return
	}
	if gotCode != code || !strings.Contains(gotMsg, msg) {
		t.Errorf("%s: got code %d error %q, want code %d and %q", what, gotCode, gotMsg, code, msg)
	}
}

// tarball builds a bundle from files (name → content).
func tarball(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

const staticManifest = `{"version":1,"metadata":{"appmode":"static","primary_html":"index.html","entrypoint":"index.html"},"files":{"index.html":{"checksum":"x"}}}`

type content struct {
	GUID       string  `json:"guid"`
	Name       string  `json:"name"`
	Title      *string `json:"title"`
	OwnerGUID  string  `json:"owner_guid"`
	BundleID   *string `json:"bundle_id"`
	AppMode    string  `json:"app_mode"`
	ContentURL string  `json:"content_url"`
}

func TestAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		var settings map[string]any
		if st := ts.call(t, "GET", "/__api__/server_settings", ts.viewer, nil, &settings); st != 200 || settings["version"] != connect.ServerVersion {
			t.Errorf("server_settings: %d %v", st, settings)
		}
		var me map[string]any
		if st := ts.call(t, "GET", "/__api__/v1/user", ts.admin, nil, &me); st != 200 ||
			me["username"] != "boss" || me["guid"] != ts.adminID || me["user_role"] != "administrator" || me["first_name"] != "Ada" {
			t.Errorf("v1/user: %d %v", st, me)
		}

		// A bad key, and no key at all.
		var e apiErr
		st := ts.call(t, "GET", "/__api__/v1/user", "atr_nonsense", nil, &e)
		wantErr(t, "bad key", st, 401, e, 30, "Invalid login")
		e = nil
		st = ts.call(t, "GET", "/__api__/v1/content", "", nil, &e)
		wantErr(t, "no key", st, 401, e, 30, "Invalid login")

		// Viewers cannot publish.
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/content", ts.viewer, jsonBody(map[string]string{"name": "mine"}), &e)
		wantErr(t, "viewer creates", st, 403, e, 6, "publisher")

		// Create with a name, and with {} (a name is generated).
		var c content
		if st := ts.call(t, "POST", "/__api__/v1/content", ts.pub, jsonBody(map[string]string{"name": "my-site"}), &c); st != 200 || c.Name != "my-site" || c.GUID == "" || c.BundleID != nil {
			t.Fatalf("create: %d %+v", st, c)
		}
		var anon content
		if st := ts.call(t, "POST", "/__api__/v1/content", ts.pub, strings.NewReader("{}"), &anon); st != 200 || len(anon.Name) < 3 {
			t.Errorf("create {}: %d %+v", st, anon)
		}
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/content", ts.pub, jsonBody(map[string]string{"name": "my-site"}), &e)
		wantErr(t, "duplicate name", st, 409, e, 8, "my-site")
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/content", ts.pub, jsonBody(map[string]string{"name": "a b"}), &e)
		wantErr(t, "bad name", st, 400, e, 3, "3-64 characters")

		// The unique-name probe rsconnect makes.
		var list []content
		if st := ts.call(t, "GET", "/__api__/v1/content?name=my-site", ts.pub, nil, &list); st != 200 || len(list) != 1 {
			t.Errorf("list by name: %d %+v", st, list)
		}
		list = nil
		if st := ts.call(t, "GET", "/__api__/v1/content?name=my-site", ts.other, nil, &list); st != 200 || len(list) != 0 {
			t.Errorf("another publisher's list: %d %+v", st, list)
		}

		// PATCH the title.
		var patched content
		if st := ts.call(t, "PATCH", "/__api__/v1/content/"+c.GUID, ts.pub, jsonBody(map[string]string{"title": "My Site"}), &patched); st != 200 || patched.Title == nil || *patched.Title != "My Site" {
			t.Errorf("patch: %d %+v", st, patched)
		}

		// Unknown content, and someone else's: 404 for both, so GUIDs
		// cannot be probed. The admin sees it.
		for _, tc := range []struct{ what, method, path, key string }{
			{"unknown content", "GET", "/__api__/v1/content/00000000-0000-4000-8000-000000000000", ts.pub},
			{"another's content", "GET", "/__api__/v1/content/" + c.GUID, ts.other},
			{"another's patch", "PATCH", "/__api__/v1/content/" + c.GUID, ts.other},
			{"another's upload", "POST", "/__api__/v1/content/" + c.GUID + "/bundles", ts.other},
			{"another's deploy", "POST", "/__api__/v1/content/" + c.GUID + "/deploy", ts.other},
			{"unknown task", "GET", "/__api__/v1/tasks/nope", ts.pub},
		} {
			e = nil
			st := ts.call(t, tc.method, tc.path, tc.key, strings.NewReader("{}"), &e)
			wantErr(t, tc.what, st, 404, e, 4, "not found")
		}
		if st := ts.call(t, "GET", "/__api__/v1/content/"+c.GUID, ts.admin, nil, &content{}); st != 200 {
			t.Errorf("admin get: %d", st)
		}

		// Bad bundles are refused with a 400 and nothing is stored.
		for _, tc := range []struct {
			what string
			body []byte
			msg  string
		}{
			{"not gzip", []byte("hello"), "invalid bundle"},
			{"bad manifest", tarball(t, map[string]string{"manifest.json": "{", "index.html": "x"}), "manifest.json"},
			{"unknown app mode", tarball(t, map[string]string{"manifest.json": `{"version":1,"metadata":{"appmode":"python-flask"}}`}), "python-flask"},
			{"no manifest", tarball(t, map[string]string{"index.html": "x"}), "manifest.json"},
			{"missing entrypoint", tarball(t, map[string]string{"manifest.json": `{"version":1,"metadata":{"appmode":"python-fastapi","entrypoint":"app:app"},"python":{"version":"3.11.7","package_manager":{"name":"pip","package_file":"requirements.txt"}}}`, "requirements.txt": "fastapi"}), "app.py"},
		} {
			e = nil
			st := ts.call(t, "POST", "/__api__/v1/content/"+c.GUID+"/bundles", ts.pub, bytes.NewReader(tc.body), &e)
			wantErr(t, tc.what, st, 400, e, 3, tc.msg)
		}
		var bundles []map[string]any
		if st := ts.call(t, "GET", "/__api__/v1/content/"+c.GUID+"/bundles", ts.pub, nil, &bundles); st != 200 || len(bundles) != 0 {
			t.Errorf("bundles after bad uploads: %d %v", st, bundles)
		}

		// Deploying with no bundle at all.
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/content/"+c.GUID+"/deploy", ts.pub, strings.NewReader(`{"bundle_id":null}`), &e)
		wantErr(t, "deploy without bundles", st, 404, e, 4, "bundle not found")
	})
}

// TestStaticDeploy uploads a static bundle (raw and multipart), deploys it
// as a draft and then for real, polling the task as rsconnect does, and
// serves it.
func TestStaticDeploy(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		var c content
		if st := ts.call(t, "POST", "/__api__/v1/content", ts.pub, jsonBody(map[string]string{"name": "site"}), &c); st != 200 {
			t.Fatalf("create: %d", st)
		}
		// New content is visible to its owner only (access type acl), until
		// it is opened to every signed-in user.
		if st, body := ts.get(t, "/content/"+c.GUID+"/", ts.viewer); st != 404 || !strings.Contains(body, "no content") {
			t.Errorf("a viewer without permission sees new content: %d %s", st, body)
		}
		if _, body := ts.get(t, "/content/"+c.GUID+"/", ts.pub); strings.Contains(body, "no content") {
			t.Errorf("the owner is told the content does not exist: %s", body)
		}
		if st := ts.call(t, "PATCH", "/__api__/v1/content/"+c.GUID, ts.pub, jsonBody(map[string]string{"access_type": "logged_in"}), nil); st != 200 {
			t.Fatalf("open to signed-in users: %d", st)
		}
		page := "<h1>version one</h1>"
		var b struct {
			ID          string         `json:"id"`
			ContentGUID string         `json:"content_guid"`
			Active      bool           `json:"active"`
			Size        int64          `json:"size"`
			Metadata    map[string]any `json:"metadata"`
		}
		arch := tarball(t, map[string]string{"manifest.json": staticManifest, "index.html": page})
		if st := ts.call(t, "POST", "/__api__/v1/content/"+c.GUID+"/bundles", ts.pub, bytes.NewReader(arch), &b); st != 200 || b.ID == "" || b.Active || b.Size != int64(len(arch)) || b.Metadata["archive_md5"] == "" {
			t.Fatalf("upload: %d %+v", st, b)
		}

		// The download is the upload.
		req, _ := http.NewRequest("GET", ts.url+"/__api__/v1/content/"+c.GUID+"/bundles/"+b.ID+"/download", nil)
		req.Header.Set("Authorization", "Key "+ts.pub)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, arch) {
			t.Errorf("download: %d, %d bytes", resp.StatusCode, len(got))
		}

		// Draft: served under _bundle{id}/, not at the content's URL.
		task := deployAndWait(t, ts, c.GUID, fmt.Sprintf(`{"bundle_id":%q,"activate":false}`, b.ID))
		if task.Code != 0 || !strings.Contains(strings.Join(task.Output, "\n"), "draft") {
			t.Fatalf("draft deploy: %+v", task)
		}
		if st, body := ts.get(t, "/content/"+c.GUID+"/_bundle"+b.ID+"/", ts.viewer); st != 200 || body != page {
			t.Errorf("draft preview: %d %q", st, body)
		}
		if st, _ := ts.get(t, "/content/"+c.GUID+"/", ts.viewer); st != 404 {
			t.Errorf("content before activation: %d", st)
		}
		task = deployAndWait(t, ts, c.GUID, fmt.Sprintf(`{"bundle_id":%q}`, b.ID))
		if task.Code != 0 {
			t.Fatalf("deploy: %+v", task)
		}
		if st, body := ts.get(t, "/content/"+c.GUID+"/", ts.viewer); st != 200 || body != page {
			t.Errorf("content: %d %q", st, body)
		}
		var after content
		ts.call(t, "GET", "/__api__/v1/content/"+c.GUID, ts.pub, nil, &after)
		if after.BundleID == nil || *after.BundleID != b.ID || after.AppMode != "static" {
			t.Errorf("content after deploy: %+v", after)
		}

		// A multipart upload with git metadata, deployed as the newest
		// bundle (bundle_id null).
		var body bytes.Buffer
		boundary := "atriumtestboundary"
		fmt.Fprintf(&body, "--%s\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"bundle.tar.gz\"\r\nContent-Type: application/x-tar\r\n\r\n", boundary)
		body.Write(tarball(t, map[string]string{"manifest.json": staticManifest, "index.html": "<h1>version two</h1>"}))
		fmt.Fprintf(&body, "\r\n--%s\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"source\":\"git\",\"source_commit\":\"abc\"}\r\n--%s--\r\n", boundary, boundary)
		req, _ = http.NewRequest("POST", ts.url+"/__api__/v1/content/"+c.GUID+"/bundles", &body)
		req.Header.Set("Authorization", "Key "+ts.pub)
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b2 struct {
			ID       string         `json:"id"`
			Metadata map[string]any `json:"metadata"`
		}
		json.NewDecoder(resp.Body).Decode(&b2)
		resp.Body.Close()
		if resp.StatusCode != 200 || b2.Metadata["source_commit"] != "abc" {
			t.Fatalf("multipart upload: %d %+v", resp.StatusCode, b2)
		}
		if task := deployAndWait(t, ts, c.GUID, `{"bundle_id":null}`); task.Code != 0 {
			t.Fatalf("deploy latest: %+v", task)
		}
		if st, body := ts.get(t, "/content/"+c.GUID+"/", ts.viewer); st != 200 || !strings.Contains(body, "version two") {
			t.Errorf("content after second deploy: %d %q", st, body)
		}
		// A mode this server cannot run fails the task and keeps version two.
		shiny := tarball(t, map[string]string{"manifest.json": `{"version":1,"metadata":{"appmode":"shiny","entrypoint":"app.R"},"platform":"4.3.0"}`, "app.R": "x"})
		var b3 struct {
			ID string `json:"id"`
		}
		if st := ts.call(t, "POST", "/__api__/v1/content/"+c.GUID+"/bundles", ts.pub, bytes.NewReader(shiny), &b3); st != 200 {
			t.Fatalf("upload shiny: %d", st)
		}
		if task := deployAndWait(t, ts, c.GUID, `{"bundle_id":null}`); task.Code == 0 || !strings.Contains(task.Error, "shiny") {
			t.Errorf("unsupported mode deployed: %+v", task)
		}
		if st, body := ts.get(t, "/content/"+c.GUID+"/", ts.viewer); st != 200 || !strings.Contains(body, "version two") {
			t.Errorf("content after failed deploy: %d %q", st, body)
		}
		// Deleting content stops serving it.
		if st := ts.call(t, "DELETE", "/__api__/v1/content/"+c.GUID, ts.pub, nil, nil); st != 204 {
			t.Errorf("delete: %d", st)
		}
		if st, _ := ts.get(t, "/content/"+c.GUID+"/", ts.viewer); st != 404 {
			t.Errorf("content after delete: %d", st)
		}
	})
}

func (ts testServer) get(t *testing.T, path, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.url+path, nil)
	req.Header.Set("Authorization", "Key "+key)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type taskStatus struct {
	ID       string   `json:"id"`
	Output   []string `json:"output"`
	Finished bool     `json:"finished"`
	Code     int      `json:"code"`
	Error    string   `json:"error"`
	Last     int      `json:"last"`
	Result   any      `json:"result"`
}

// deployAndWait starts a deploy and polls its task like rsconnect
// (?first=<last>&wait=1), checking that lines are never repeated or lost.
func deployAndWait(t *testing.T, ts testServer, guid, body string) taskStatus {
	t.Helper()
	var started struct {
		TaskID string `json:"task_id"`
	}
	if st := ts.call(t, "POST", "/__api__/v1/content/"+guid+"/deploy", ts.pub, strings.NewReader(body), &started); st != 200 || started.TaskID == "" {
		t.Fatalf("deploy: %d %+v", st, started)
	}
	var all []string
	first := 0
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var task taskStatus
		if st := ts.call(t, "GET", fmt.Sprintf("/__api__/v1/tasks/%s?first=%d&wait=1", started.TaskID, first), ts.pub, nil, &task); st != 200 {
			t.Fatalf("task: %d", st)
		}
		if task.Last != first+len(task.Output) {
			t.Fatalf("task last %d, want %d+%d", task.Last, first, len(task.Output))
		}
		all = append(all, task.Output...)
		first = task.Last
		if task.Finished {
			// The whole log, asked from the start, is what was streamed.
			var whole taskStatus
			ts.call(t, "GET", "/__api__/v1/tasks/"+started.TaskID, ts.pub, nil, &whole)
			if strings.Join(whole.Output, "\n") != strings.Join(all, "\n") {
				t.Errorf("streamed log %q differs from the whole log %q", all, whole.Output)
			}
			task.Output = all
			return task
		}
	}
	t.Fatal("deploy did not finish within 60s")
	return taskStatus{}
}

// newContent creates content as the key's user and returns its GUID.
func (ts testServer) newContent(t *testing.T, key, name string) string {
	t.Helper()
	var c content
	if st := ts.call(t, "POST", "/__api__/v1/content", key, jsonBody(map[string]string{"name": name}), &c); st != 200 || c.GUID == "" {
		t.Fatalf("create %s: %d %+v", name, st, c)
	}
	return c.GUID
}

// TestEnvironment sets, lists and deletes environment variables as
// posit-sdk does: names only on GET, values reach the runtime's store
// method.
func TestEnvironment(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		guid := ts.newContent(t, ts.pub, "env-app")
		path := "/__api__/v1/content/" + guid + "/environment"
		var names []string
		if st := ts.call(t, "GET", path, ts.pub, nil, &names); st != 200 || names == nil || len(names) != 0 {
			t.Fatalf("empty environment: %d %v", st, names)
		}
		names = nil
		st := ts.call(t, "PATCH", path, ts.pub, strings.NewReader(`[{"name":"DB_URL","value":"postgres://x"},{"name":"A_KEY","value":"s3cret"}]`), &names)
		if st != 200 || strings.Join(names, ",") != "A_KEY,DB_URL" {
			t.Fatalf("patch: %d %v", st, names)
		}
		// The values never come back through the API, but the runtime sees them.
		if st, body := ts.get(t, path, ts.pub); st != 200 || strings.Contains(body, "s3cret") {
			t.Errorf("GET leaks values: %d %s", st, body)
		}
		env, err := connect.EnvVarsOf(ts.srv, context.Background(), guid)
		if err != nil || len(env) != 2 || env["A_KEY"] != "s3cret" || env["DB_URL"] != "postgres://x" {
			t.Errorf("EnvVars: %v %v", env, err)
		}
		// null deletes; a new value overwrites.
		names = nil
		ts.call(t, "PATCH", path, ts.pub, strings.NewReader(`[{"name":"DB_URL","value":null},{"name":"A_KEY","value":"new"}]`), &names)
		if env, _ := connect.EnvVarsOf(ts.srv, context.Background(), guid); strings.Join(names, ",") != "A_KEY" || env["A_KEY"] != "new" || len(env) != 1 {
			t.Errorf("after delete: %v %v", names, env)
		}
		var e apiErr
		st = ts.call(t, "PATCH", path, ts.pub, strings.NewReader(`[{"name":"1BAD","value":"x"}]`), &e)
		wantErr(t, "bad name", st, 400, e, 3, "1BAD")
		e = nil
		st = ts.call(t, "GET", path, ts.other, nil, &e)
		wantErr(t, "another's environment", st, 404, e, 4, "not found")
		// PUT replaces everything; [] clears (posit-sdk's clear()).
		names = nil
		if st := ts.call(t, "PUT", path, ts.pub, strings.NewReader(`[]`), &names); st != 200 || len(names) != 0 {
			t.Errorf("put []: %d %v", st, names)
		}
		// Deleting the content deletes its variables.
		ts.call(t, "PATCH", path, ts.pub, strings.NewReader(`[{"name":"X","value":"1"}]`), nil)
		ts.call(t, "DELETE", "/__api__/v1/content/"+guid, ts.pub, nil, nil)
		if env, err := connect.EnvVarsOf(ts.srv, context.Background(), guid); err != nil || len(env) != 0 {
			t.Errorf("variables of deleted content: %v %v", env, err)
		}
	})
}

type page struct {
	Results     []map[string]any `json:"results"`
	CurrentPage int              `json:"current_page"`
	Total       int              `json:"total"`
}

// getPage checks that a paged answer has exactly posit-sdk's three keys.
func (ts testServer) getPage(t *testing.T, path, key string) page {
	t.Helper()
	var raw map[string]json.RawMessage
	if st := ts.call(t, "GET", path, key, nil, &raw); st != 200 || len(raw) != 3 {
		t.Fatalf("GET %s: %d, keys %v", path, st, raw)
	}
	var p page
	b, _ := json.Marshal(raw)
	json.Unmarshal(b, &p)
	return p
}

func usernames(p page) string {
	var n []string
	for _, r := range p.Results {
		n = append(n, fmt.Sprint(r["username"]))
	}
	return strings.Join(n, ",")
}

func TestUsersAndGroups(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		p := ts.getPage(t, "/__api__/v1/users?page_number=1&page_size=500", ts.viewer)
		if p.Total != 4 || p.CurrentPage != 1 || usernames(p) != "boss,other,pub,viewer" {
			t.Errorf("users: %+v", p)
		}
		if p := ts.getPage(t, "/__api__/v1/users?page_number=2&page_size=3", ts.viewer); p.Total != 4 || p.CurrentPage != 2 || usernames(p) != "viewer" {
			t.Errorf("page 2: %+v", p)
		}
		if p := ts.getPage(t, "/__api__/v1/users?page_number=3&page_size=3", ts.viewer); p.Total != 4 || len(p.Results) != 0 {
			t.Errorf("past the end: %+v", p)
		}
		for q, want := range map[string]string{
			"prefix=P":                           "pub",
			"prefix=ada":                         "boss,other,pub,viewer", // first name
			"user_role=administrator":            "boss",
			"user_role=publisher|viewer":         "other,pub,viewer",
			"account_status=locked":              "",
			"account_status=licensed&prefix=vie": "viewer",
		} {
			if p := ts.getPage(t, "/__api__/v1/users?"+q, ts.pub); usernames(p) != want {
				t.Errorf("users?%s: %q, want %q", q, usernames(p), want)
			}
		}
		var e apiErr
		st := ts.call(t, "GET", "/__api__/v1/users?user_role=king", ts.pub, nil, &e)
		wantErr(t, "bad role", st, 400, e, 3, "king")
		e = nil
		st = ts.call(t, "GET", "/__api__/v1/users?page_size=501", ts.pub, nil, &e)
		wantErr(t, "page too big", st, 400, e, 3, "page_size")
		var u map[string]any
		if st := ts.call(t, "GET", "/__api__/v1/users/"+ts.pubID, ts.viewer, nil, &u); st != 200 || u["guid"] != ts.pubID || u["username"] != "pub" {
			t.Errorf("get user: %d %v", st, u)
		}

		// Groups: publishers create them and manage their members.
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/groups", ts.viewer, jsonBody(map[string]string{"name": "Nope"}), &e)
		wantErr(t, "viewer creates group", st, 403, e, 6, "publisher")
		var g map[string]any
		if st := ts.call(t, "POST", "/__api__/v1/groups", ts.pub, jsonBody(map[string]string{"name": "Team"}), &g); st != 200 || g["name"] != "Team" || g["owner_guid"] != ts.pubID || g["guid"] == "" {
			t.Fatalf("create group: %d %v", st, g)
		}
		gid := g["guid"].(string)
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/groups", ts.other, jsonBody(map[string]string{"name": "Team"}), &e)
		wantErr(t, "duplicate group", st, 409, e, 8, "Team")
		ts.call(t, "POST", "/__api__/v1/groups", ts.other, jsonBody(map[string]string{"name": "Others"}), nil)
		if p := ts.getPage(t, "/__api__/v1/groups?prefix=te", ts.viewer); p.Total != 1 || p.Results[0]["guid"] != gid {
			t.Errorf("groups?prefix=te: %+v", p)
		}
		if p := ts.getPage(t, "/__api__/v1/groups", ts.viewer); p.Total != 2 {
			t.Errorf("groups: %+v", p)
		}
		if st := ts.call(t, "POST", "/__api__/v1/groups/"+gid+"/members", ts.pub, jsonBody(map[string]string{"user_guid": ts.viewerID}), nil); st != 204 {
			t.Errorf("add member: %d", st)
		}
		if st := ts.call(t, "POST", "/__api__/v1/groups/"+gid+"/members", ts.pub, jsonBody(map[string]string{"user_guid": ts.viewerID}), nil); st != 204 {
			t.Errorf("add member again: %d", st)
		}
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/groups/"+gid+"/members", ts.pub, jsonBody(map[string]string{"user_guid": "nobody"}), &e)
		wantErr(t, "unknown member", st, 404, e, 4, "user not found")
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/groups/"+gid+"/members", ts.other, jsonBody(map[string]string{"user_guid": ts.otherID}), &e)
		wantErr(t, "not the group's owner", st, 403, e, 6, "owner")
		if p := ts.getPage(t, "/__api__/v1/groups/"+gid+"/members", ts.other); p.Total != 1 || usernames(p) != "viewer" {
			t.Errorf("members: %+v", p)
		}
		if st := ts.call(t, "DELETE", "/__api__/v1/groups/"+gid+"/members/"+ts.viewerID, ts.pub, nil, nil); st != 204 {
			t.Errorf("remove member: %d", st)
		}
		if p := ts.getPage(t, "/__api__/v1/groups/"+gid+"/members", ts.other); p.Total != 0 {
			t.Errorf("members after removal: %+v", p)
		}
		// An admin may delete anyone's group.
		if st := ts.call(t, "DELETE", "/__api__/v1/groups/"+gid, ts.admin, nil, nil); st != 204 {
			t.Errorf("delete group: %d", st)
		}
		e = nil
		st = ts.call(t, "GET", "/__api__/v1/groups/"+gid, ts.pub, nil, &e)
		wantErr(t, "deleted group", st, 404, e, 4, "group not found")
	})
}

type permission struct {
	ID            string `json:"id"`
	ContentGUID   string `json:"content_guid"`
	PrincipalGUID string `json:"principal_guid"`
	PrincipalType string `json:"principal_type"`
	Role          string `json:"role"`
}

// TestPermissions gives users and groups roles on content and checks who
// then sees and changes it.
func TestPermissions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		ctx := context.Background()
		guid := ts.newContent(t, ts.pub, "shared-app")
		cpath := "/__api__/v1/content/" + guid
		ppath := cpath + "/permissions"
		canSee := func(key string) int { return ts.call(t, "GET", cpath, key, nil, nil) }
		listed := func(key string) bool {
			var list []content
			ts.call(t, "GET", "/__api__/v1/content", key, nil, &list)
			for _, c := range list {
				if c.GUID == guid {
					return true
				}
			}
			return false
		}
		if canSee(ts.other) != 404 || listed(ts.other) || canSee(ts.viewer) != 404 {
			t.Fatal("others see acl content without a permission")
		}

		// A viewer permission for another user: they see it, read-only.
		var p permission
		if st := ts.call(t, "POST", ppath, ts.pub, jsonBody(map[string]string{"principal_guid": ts.otherID, "principal_type": "user", "role": "viewer"}), &p); st != 200 ||
			p.ID == "" || p.ContentGUID != guid || p.PrincipalGUID != ts.otherID || p.PrincipalType != "user" || p.Role != "viewer" {
			t.Fatalf("add permission: %d %+v", st, p)
		}
		var c map[string]any
		if st := ts.call(t, "GET", cpath, ts.other, nil, &c); st != 200 || c["app_role"] != "viewer" || !listed(ts.other) {
			t.Errorf("permitted viewer: %d %v", st, c)
		}
		if ok, err := connect.CanViewOf(ts.srv, ctx, guid, auth.User{ID: ts.otherID, Role: "publisher"}); !ok || err != nil {
			t.Errorf("CanView(other) = %v, %v", ok, err)
		}
		var e apiErr
		st := ts.call(t, "PATCH", cpath, ts.other, jsonBody(map[string]string{"title": "mine now"}), &e)
		wantErr(t, "viewer patches", st, 403, e, 6, "view")
		e = nil
		st = ts.call(t, "POST", ppath, ts.other, jsonBody(map[string]string{"principal_guid": ts.viewerID, "principal_type": "user", "role": "viewer"}), &e)
		wantErr(t, "viewer adds permission", st, 403, e, 6, "view")
		var list []permission
		if st := ts.call(t, "GET", ppath, ts.other, nil, &list); st != 200 || len(list) != 1 || list[0] != p {
			t.Errorf("list permissions: %d %+v", st, list)
		}
		var one permission
		if st := ts.call(t, "GET", ppath+"/"+p.ID, ts.pub, nil, &one); st != 200 || one != p {
			t.Errorf("get permission: %d %+v", st, one)
		}

		// Bad requests.
		for _, tc := range []struct {
			what string
			body map[string]string
			code int
			msg  string
		}{
			{"twice", map[string]string{"principal_guid": ts.otherID, "principal_type": "user", "role": "owner"}, 409, "already"},
			{"bad role", map[string]string{"principal_guid": ts.viewerID, "principal_type": "user", "role": "king"}, 400, "role"},
			{"bad type", map[string]string{"principal_guid": ts.viewerID, "principal_type": "robot", "role": "viewer"}, 400, "principal_type"},
			{"unknown user", map[string]string{"principal_guid": "nobody", "principal_type": "user", "role": "viewer"}, 400, "no user"},
			{"unknown group", map[string]string{"principal_guid": "nobody", "principal_type": "group", "role": "viewer"}, 400, "no group"},
			{"viewer as owner", map[string]string{"principal_guid": ts.viewerID, "principal_type": "user", "role": "owner"}, 400, "viewer role"},
		} {
			e = nil
			st := ts.call(t, "POST", ppath, ts.pub, jsonBody(tc.body), &e)
			wantErr(t, tc.what, st, tc.code, e, map[int]int{400: 3, 409: 8}[tc.code], tc.msg)
		}

		// Upgraded to owner (PUT, as posit-sdk sends it): a collaborator.
		var up permission
		if st := ts.call(t, "PUT", ppath+"/"+p.ID, ts.pub, jsonBody(map[string]string{"principal_guid": ts.otherID, "principal_type": "user", "role": "owner"}), &up); st != 200 || up.Role != "owner" || up.ID != p.ID {
			t.Fatalf("update permission: %d %+v", st, up)
		}
		c = nil
		if st := ts.call(t, "PATCH", cpath, ts.other, jsonBody(map[string]string{"title": "Shared"}), &c); st != 200 || c["title"] != "Shared" {
			t.Errorf("collaborator patches: %d %v", st, c)
		}
		c = nil
		if ts.call(t, "GET", cpath, ts.other, nil, &c); c["app_role"] != "editor" {
			t.Errorf("collaborator's app_role: %v", c["app_role"])
		}
		if st := ts.call(t, "GET", cpath+"/environment", ts.other, nil, nil); st != 200 {
			t.Errorf("collaborator's environment: %d", st)
		}

		// Through a group: the viewer user sees it while a member.
		var g map[string]any
		ts.call(t, "POST", "/__api__/v1/groups", ts.pub, jsonBody(map[string]string{"name": "Readers"}), &g)
		gid := g["guid"].(string)
		ts.call(t, "POST", "/__api__/v1/groups/"+gid+"/members", ts.pub, jsonBody(map[string]string{"user_guid": ts.viewerID}), nil)
		var gp permission
		if st := ts.call(t, "POST", ppath, ts.pub, jsonBody(map[string]string{"principal_guid": gid, "principal_type": "group", "role": "viewer"}), &gp); st != 200 {
			t.Fatalf("group permission: %d", st)
		}
		if canSee(ts.viewer) != 200 || !listed(ts.viewer) {
			t.Error("a group member does not see the content")
		}
		// An owner permission through a group does not let a user with
		// the viewer role change content.
		ts.call(t, "PUT", ppath+"/"+gp.ID, ts.pub, jsonBody(map[string]string{"role": "owner"}), nil)
		e = nil
		st = ts.call(t, "PATCH", cpath, ts.viewer, jsonBody(map[string]string{"title": "viewer's"}), &e)
		wantErr(t, "viewer-role group owner patches", st, 403, e, 6, "view")
		ts.call(t, "DELETE", "/__api__/v1/groups/"+gid+"/members/"+ts.viewerID, ts.pub, nil, nil)
		if canSee(ts.viewer) != 404 {
			t.Error("a former group member still sees the content")
		}
		// Deleting the group deletes its permissions.
		ts.call(t, "DELETE", "/__api__/v1/groups/"+gid, ts.pub, nil, nil)
		list = nil
		if ts.call(t, "GET", ppath, ts.pub, nil, &list); len(list) != 1 {
			t.Errorf("permissions after the group's deletion: %+v", list)
		}

		// access_type: logged_in opens it to every signed-in user, all to
		// anonymous visitors too (for the content server).
		ts.call(t, "PATCH", cpath, ts.pub, jsonBody(map[string]string{"access_type": "logged_in"}), nil)
		if canSee(ts.viewer) != 200 {
			t.Error("logged_in content is hidden from a viewer")
		}
		if ok, _ := connect.CanViewOf(ts.srv, ctx, guid, auth.User{}); ok {
			t.Error("anonymous can view logged_in content")
		}
		c = nil
		ts.call(t, "PATCH", cpath, ts.pub, jsonBody(map[string]string{"access_type": "all"}), &c)
		if ok, _ := connect.CanViewOf(ts.srv, ctx, guid, auth.User{}); !ok || c["access_type"] != "all" {
			t.Errorf("anonymous cannot view access_type all content (%v)", c["access_type"])
		}
		ts.call(t, "PATCH", cpath, ts.pub, jsonBody(map[string]string{"access_type": "acl"}), nil)
		if canSee(ts.viewer) != 404 {
			t.Error("acl content is visible to a viewer again")
		}
		if ok, err := connect.CanViewOf(ts.srv, ctx, "00000000-0000-4000-8000-000000000000", auth.User{ID: ts.adminID, Role: "admin"}); ok || err != nil {
			t.Errorf("CanView(unknown) = %v, %v", ok, err)
		}

		// Removing the permission hides it again.
		if st := ts.call(t, "DELETE", ppath+"/"+p.ID, ts.pub, nil, nil); st != 204 {
			t.Errorf("delete permission: %d", st)
		}
		if canSee(ts.other) != 404 {
			t.Error("content still visible after its permission was deleted")
		}
		e = nil
		st = ts.call(t, "DELETE", ppath+"/"+p.ID, ts.pub, nil, &e)
		wantErr(t, "deleted permission", st, 404, e, 4, "not found")
	})
}

type tag struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	ParentID *string `json:"parent_id"`
}

func TestTagsAndVanity(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		var e apiErr
		st := ts.call(t, "POST", "/__api__/v1/tags", ts.pub, jsonBody(map[string]any{"name": "Dept"}), &e)
		wantErr(t, "publisher creates tag", st, 403, e, 6, "admin")
		var dept, sales tag
		if st := ts.call(t, "POST", "/__api__/v1/tags", ts.admin, jsonBody(map[string]any{"name": "Dept"}), &dept); st != 200 || dept.ID == "" || dept.ParentID != nil {
			t.Fatalf("create tag: %d %+v", st, dept)
		}
		if st := ts.call(t, "POST", "/__api__/v1/tags", ts.admin, jsonBody(map[string]any{"name": "Sales", "parent_id": dept.ID}), &sales); st != 200 || sales.ParentID == nil || *sales.ParentID != dept.ID {
			t.Fatalf("create child tag: %d %+v", st, sales)
		}
		e = nil
		st = ts.call(t, "POST", "/__api__/v1/tags", ts.admin, jsonBody(map[string]any{"name": "Sales", "parent_id": dept.ID}), &e)
		wantErr(t, "duplicate tag", st, 409, e, 8, "Sales")
		var tags []tag
		if ts.call(t, "GET", "/__api__/v1/tags?parent_id="+dept.ID, ts.viewer, nil, &tags); len(tags) != 1 || tags[0].ID != sales.ID {
			t.Errorf("tags?parent_id: %+v", tags)
		}
		tags = nil
		if ts.call(t, "GET", "/__api__/v1/tags?name=Dept", ts.viewer, nil, &tags); len(tags) != 1 || tags[0].ID != dept.ID {
			t.Errorf("tags?name: %+v", tags)
		}
		e = nil
		st = ts.call(t, "PATCH", "/__api__/v1/tags/"+dept.ID, ts.admin, jsonBody(map[string]any{"parent_id": sales.ID}), &e)
		wantErr(t, "tag below itself", st, 400, e, 3, "below itself")
		var renamed tag
		if st := ts.call(t, "PATCH", "/__api__/v1/tags/"+sales.ID, ts.admin, jsonBody(map[string]any{"name": "Sales EU"}), &renamed); st != 200 || renamed.Name != "Sales EU" || renamed.ParentID == nil {
			t.Errorf("rename tag: %d %+v", st, renamed)
		}

		guid := ts.newContent(t, ts.pub, "tagged")
		cpath := "/__api__/v1/content/" + guid
		var added tag
		if st := ts.call(t, "POST", cpath+"/tags", ts.pub, jsonBody(map[string]any{"tag_id": sales.ID}), &added); st != 200 || added.ID != sales.ID {
			t.Errorf("tag content: %d %+v", st, added)
		}
		e = nil
		st = ts.call(t, "POST", cpath+"/tags", ts.other, jsonBody(map[string]any{"tag_id": sales.ID}), &e)
		wantErr(t, "another's content tag", st, 404, e, 4, "not found")
		tags = nil
		if ts.call(t, "GET", cpath+"/tags", ts.pub, nil, &tags); len(tags) != 1 {
			t.Errorf("content tags: %+v", tags)
		}
		var tagged []content
		if ts.call(t, "GET", "/__api__/v1/tags/"+sales.ID+"/content", ts.pub, nil, &tagged); len(tagged) != 1 || tagged[0].GUID != guid {
			t.Errorf("tag content: %+v", tagged)
		}
		tagged = nil
		if ts.call(t, "GET", "/__api__/v1/tags/"+sales.ID+"/content", ts.other, nil, &tagged); len(tagged) != 0 {
			t.Errorf("tag content seen by another: %+v", tagged)
		}

		// Vanity URLs.
		e = nil
		st = ts.call(t, "GET", cpath+"/vanity", ts.pub, nil, &e)
		wantErr(t, "no vanity", st, 404, e, 4, "not found")
		var v map[string]any
		if st := ts.call(t, "PUT", cpath+"/vanity", ts.pub, jsonBody(map[string]any{"path": "sales/dash"}), &v); st != 200 || v["path"] != "/sales/dash/" || v["content_guid"] != guid {
			t.Fatalf("set vanity: %d %v", st, v)
		}
		other := ts.newContent(t, ts.pub, "other-app")
		for _, tc := range []struct {
			what, path string
			force      bool
			key        string
			status     int
			msg        string
		}{
			{"same path", "/sales/dash/", false, ts.pub, 409, "in use"},
			{"parent path", "/sales", false, ts.pub, 409, "in use"},
			{"reserved", "/content/x", false, ts.pub, 400, "reserved"},
			{"bad characters", "/a b/", false, ts.pub, 400, "may only contain"},
			{"force by publisher", "/sales/dash/", true, ts.pub, 403, "admins"},
		} {
			e = nil
			st := ts.call(t, "PUT", "/__api__/v1/content/"+other+"/vanity", tc.key, jsonBody(map[string]any{"path": tc.path, "force": tc.force}), &e)
			wantErr(t, tc.what, st, tc.status, e, map[int]int{400: 3, 403: 6, 409: 8}[tc.status], tc.msg)
		}
		var full map[string]any
		ts.call(t, "GET", cpath+"?include=owner,tags,vanity_url", ts.pub, nil, &full)
		if u, _ := full["vanity_url"].(string); !strings.HasSuffix(u, "/sales/dash/") || len(full["tags"].([]any)) != 1 || full["owner"] == nil {
			t.Errorf("include=owner,tags,vanity_url: %v", full)
		}
		full = nil
		ts.call(t, "GET", "/__api__/v1/content/"+other+"?include=tags,vanity_url", ts.pub, nil, &full)
		if _, ok := full["tags"]; ok {
			t.Errorf("tags included when there are none: %v", full)
		}
		// An admin may force: the path moves.
		if st := ts.call(t, "PUT", "/__api__/v1/content/"+other+"/vanity", ts.admin, jsonBody(map[string]any{"path": "/sales/dash/", "force": true}), nil); st != 200 {
			t.Errorf("forced vanity: %d", st)
		}
		if st := ts.call(t, "GET", cpath+"/vanity", ts.pub, nil, nil); st != 404 {
			t.Errorf("vanity after another took it: %d", st)
		}
		var all []map[string]any
		if ts.call(t, "GET", "/__api__/v1/vanities", ts.pub, nil, &all); len(all) != 1 || all[0]["content_guid"] != other {
			t.Errorf("vanities: %v", all)
		}
		all = nil
		if ts.call(t, "GET", "/__api__/v1/vanities", ts.other, nil, &all); len(all) != 0 {
			t.Errorf("vanities seen by another: %v", all)
		}
		if st := ts.call(t, "DELETE", "/__api__/v1/content/"+other+"/vanity", ts.pub, nil, nil); st != 204 {
			t.Errorf("delete vanity: %d", st)
		}

		// Deleting a tag deletes its subtree and untags content.
		if st := ts.call(t, "DELETE", "/__api__/v1/tags/"+dept.ID, ts.admin, nil, nil); st != 204 {
			t.Errorf("delete tag: %d", st)
		}
		tags = nil
		if ts.call(t, "GET", cpath+"/tags", ts.pub, nil, &tags); len(tags) != 0 {
			t.Errorf("content tags after deleting the tree: %+v", tags)
		}
		if st := ts.call(t, "GET", "/__api__/v1/tags/"+sales.ID, ts.pub, nil, nil); st != 404 {
			t.Errorf("child tag after deleting its parent: %d", st)
		}
	})
}

// TestCreateAndLockUsers is posit-sdk's users.create, user.lock and
// user.unlock: admins add users to the suite's directory and lock them.
func TestCreateAndLockUsers(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		ctx := context.Background()
		aron := map[string]any{
			"username": "aron", "email": "aron@example.com", "password": "s3cur3p@ssword",
			"first_name": "Aron", "last_name": "Smith", "user_role": "publisher",
		}
		for _, key := range []string{ts.pub, ts.viewer} {
			var e apiErr
			st := ts.call(t, "POST", "/__api__/v1/users", key, jsonBody(aron), &e)
			wantErr(t, "non-admin creates a user", st, 403, e, 6, "admin")
		}
		var u map[string]any
		if st := ts.call(t, "POST", "/__api__/v1/users", ts.admin, jsonBody(aron), &u); st != 200 ||
			u["username"] != "aron" || u["email"] != "aron@example.com" || u["first_name"] != "Aron" ||
			u["last_name"] != "Smith" || u["user_role"] != "publisher" || u["locked"] != false || u["guid"] == "" {
			t.Fatalf("create user: %d %v", st, u)
		}
		guid := u["guid"].(string)
		// The same record comes back from the list, and the password signs in.
		if p := ts.getPage(t, "/__api__/v1/users?prefix=aron", ts.viewer); p.Total != 1 || fmt.Sprint(p.Results[0]) != fmt.Sprint(u) {
			t.Errorf("users?prefix=aron: %+v, want %v", p, u)
		}
		if _, err := ts.srv.Accounts.CheckPassword(ctx, "aron", "s3cur3p@ssword"); err != nil {
			t.Errorf("the new user's password: %v", err)
		}
		var plain map[string]any
		if st := ts.call(t, "POST", "/__api__/v1/users", ts.admin, jsonBody(map[string]any{"username": "plain"}), &plain); st != 200 || plain["user_role"] != "viewer" {
			t.Errorf("a user without a role is a viewer: %d %v", st, plain)
		}

		for _, tc := range []struct {
			what   string
			body   map[string]any
			status int
			msg    string
		}{
			{"taken username", map[string]any{"username": "aron"}, 409, "aron"},
			{"bad username", map[string]any{"username": "Aron Smith"}, 400, "username"},
			{"short password", map[string]any{"username": "bill", "password": "short"}, 400, "password"},
			{"unknown role", map[string]any{"username": "bill", "user_role": "king"}, 400, "king"},
			{"password set later", map[string]any{"username": "bill", "user_must_set_password": true}, 400, "user_must_set_password"},
			{"external id", map[string]any{"username": "bill", "unique_id": "x"}, 400, "unique_id"},
		} {
			var e apiErr
			st := ts.call(t, "POST", "/__api__/v1/users", ts.admin, jsonBody(tc.body), &e)
			wantErr(t, tc.what, st, tc.status, e, map[int]int{400: 3, 409: 8}[tc.status], tc.msg)
		}

		// Locking stops the user's API keys at once; unlocking restores them.
		key, _, err := ts.srv.Accounts.CreateAPIKey(ctx, guid, "test", config.Connect, nil)
		if err != nil {
			t.Fatal(err)
		}
		lock := func(k string, locked any) (int, map[string]json.RawMessage) {
			var out map[string]json.RawMessage
			return ts.call(t, "POST", "/__api__/v1/users/"+guid+"/lock", k, jsonBody(map[string]any{"locked": locked}), &out), out
		}
		st, e := lock(ts.pub, true)
		wantErr(t, "publisher locks a user", st, 403, e, 6, "admin")
		if st, out := lock(ts.admin, true); st != 200 || string(out["locked"]) != "true" {
			t.Errorf("lock: %d %s", st, out)
		}
		if p := ts.getPage(t, "/__api__/v1/users?account_status=locked", ts.admin); usernames(p) != "aron" {
			t.Errorf("locked users: %q", usernames(p))
		}
		if st := ts.call(t, "GET", "/__api__/v1/user", key, nil, nil); st != 401 {
			t.Errorf("a locked user's key: %d, want 401", st)
		}
		if st, out := lock(ts.admin, false); st != 200 || string(out["locked"]) != "false" {
			t.Errorf("unlock: %d %s", st, out)
		}
		if st := ts.call(t, "GET", "/__api__/v1/user", key, nil, nil); st != 200 {
			t.Errorf("the key after unlocking: %d", st)
		}
		st, e = lock(ts.admin, nil)
		wantErr(t, "no locked field", st, 400, e, 3, "locked")
		var nf apiErr
		st = ts.call(t, "POST", "/__api__/v1/users/no-such-user/lock", ts.admin, jsonBody(map[string]any{"locked": true}), &nf)
		wantErr(t, "unknown user", st, 404, nf, 4, "not found")
	})
}

// TestContentTagTree: putting a tag on content puts the tags above it
// there too (but not the category at the top), so a tag's content includes
// its subtags' content; taking a tag off takes the tags below it off.
func TestContentTagTree(t *testing.T) {
	forEachDialect(t, func(t *testing.T, ts testServer) {
		mk := func(name string, parent *tag) tag {
			t.Helper()
			body := map[string]any{"name": name}
			if parent != nil {
				body["parent_id"] = parent.ID
			}
			var tg tag
			if st := ts.call(t, "POST", "/__api__/v1/tags", ts.admin, jsonBody(body), &tg); st != 200 {
				t.Fatalf("create tag %s: %d", name, st)
			}
			return tg
		}
		root := mk("root", nil)
		a := mk("a", &root)
		b := mk("b", &root)
		c := mk("c", &a)
		d := mk("d", &c)
		names := map[string]string{root.ID: "root", a.ID: "a", b.ID: "b", c.ID: "c", d.ID: "d"}
		guid := ts.newContent(t, ts.pub, "tree")
		other := ts.newContent(t, ts.pub, "tree-other")
		contentTags := func(guid string) string {
			t.Helper()
			var list []tag
			ts.call(t, "GET", "/__api__/v1/content/"+guid+"/tags", ts.pub, nil, &list)
			var n []string
			for _, tg := range list {
				n = append(n, names[tg.ID])
			}
			return strings.Join(n, ",")
		}
		tagged := func(tg tag) int {
			t.Helper()
			var list []content
			ts.call(t, "GET", "/__api__/v1/tags/"+tg.ID+"/content", ts.pub, nil, &list)
			return len(list)
		}
		step := func(method, guid string, tg tag) {
			t.Helper()
			path := "/__api__/v1/content/" + guid + "/tags"
			var body io.Reader
			if method == "POST" {
				body = jsonBody(map[string]any{"tag_id": tg.ID})
			} else {
				path += "/" + tg.ID
			}
			if st := ts.call(t, method, path, ts.pub, body, nil); st != map[string]int{"POST": 200, "DELETE": 204}[method] {
				t.Fatalf("%s %s: %d", method, path, st)
			}
		}

		step("POST", guid, d)
		step("POST", guid, b)
		step("POST", other, c)
		if got := contentTags(guid); got != "a,b,c,d" {
			t.Errorf("tags after adding d and b: %q, want a,b,c,d", got)
		}
		if got := contentTags(other); got != "a,c" {
			t.Errorf("tags after adding c: %q, want a,c", got)
		}
		for tg, want := range map[tag]int{root: 0, a: 2, b: 1, c: 2, d: 1} {
			if got := tagged(tg); got != want {
				t.Errorf("content tagged %s: %d, want %d", names[tg.ID], got, want)
			}
		}
		var e apiErr
		st := ts.call(t, "POST", "/__api__/v1/content/"+guid+"/tags", ts.pub, jsonBody(map[string]any{"tag_id": root.ID}), &e)
		wantErr(t, "a category on content", st, 400, e, 3, "category")

		step("DELETE", guid, c) // and d below it
		if got := contentTags(guid); got != "a,b" {
			t.Errorf("tags after removing c: %q, want a,b", got)
		}
		step("DELETE", guid, root) // everything; root itself was never there
		step("DELETE", other, root)
		if got := contentTags(guid) + contentTags(other); got != "" {
			t.Errorf("tags after removing the tree: %q", got)
		}
		e = nil
		st = ts.call(t, "DELETE", "/__api__/v1/content/"+guid+"/tags/999999", ts.pub, nil, &e)
		wantErr(t, "unknown tag", st, 404, e, 4, "not found")
	})
}
