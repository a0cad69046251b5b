package connect_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atrium-suite/atrium/connect"
	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
	"github.com/atrium-suite/atrium/shared/platform"
)

// testServer is Connect running in-process with a few users' API keys.
type testServer struct {
	url                       string
	admin, pub, other, viewer string // API keys
	adminID                   string
}

// start runs Connect on a free port: SQLite, or PostgreSQL in a fresh
// database of $ATRIUM_TEST_POSTGRES_DSN (Connect's schema name is fixed, so
// each test needs its own database).
func start(t *testing.T, postgres bool) testServer {
	t.Helper()
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	cfg.Connect.Listen = "127.0.0.1:0"
	if postgres {
		cfg.Shared.DatabaseURL = freshDatabase(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := connect.New(ctx, cfg, platform.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	ts := testServer{url: "http://" + s.HTTP.Addr().String()}
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
	ts.pub, _ = key("pub", accounts.RolePublisher)
	ts.other, _ = key("other", accounts.RolePublisher)
	ts.viewer, _ = key("viewer", accounts.RoleViewer)
	return ts
}

func freshDatabase(t *testing.T) string {
	t.Helper()
	dsn := dbtest.PostgresDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "atrium_connect_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(ctx)
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
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
			me["username"] != "boss" || me["guid"] != ts.adminID || me["user_role"] != "admin" || me["first_name"] != "Ada" {
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
