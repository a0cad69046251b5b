package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var (
	connectClientsOnce sync.Once
	connectClientsDir  string
	connectClientsErr  error
)

// connectClients is a venv with rsconnect-python and posit-sdk
// (scripts/connect-clients.sh, cached outside the clone).
func connectClients(t *testing.T) string {
	t.Helper()
	connectClientsOnce.Do(func() {
		cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "connect-clients.sh"))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		connectClientsDir, connectClientsErr = strings.TrimSpace(string(out)), err
	})
	if connectClientsErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("scripts/connect-clients.sh: %v", connectClientsErr)
		}
		t.Skipf("Connect clients unavailable: %v", connectClientsErr)
	}
	return connectClientsDir
}

// rsconnectCLI runs the real rsconnect CLI with its own HOME (its server
// list) and returns its output and whether it succeeded.
func rsconnectCLI(t *testing.T, home string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join(connectClients(t), "bin", "rsconnect"), args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "NO_COLOR=1", "CONNECT_TASK_TIMEOUT=600")
	raw, err := cmd.CombinedOutput()
	out := ansiEscape.ReplaceAllString(string(raw), "") // it colours even without a terminal
	t.Logf("rsconnect %s:\n%s", strings.Join(args, " "), out)
	return out, err == nil
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// copyDir copies a testdata sample, so rsconnect's deployment records
// (rsconnect-python/*.json) land in a temp dir, not in the clone.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	run(t, "", nil, "cp", "-r", src, dst)
	return dst
}

var contentURLPattern = regexp.MustCompile(`Direct content URL: (\S+)`)

func keyGet(t *testing.T, u, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Key "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConnectDeploy is the publisher's story with the real rsconnect CLI:
// add the server with an API key, deploy a static site and a FastAPI app
// (its environment built with uv from Package Manager's pypi repository,
// which mirrors the host's index), see them answer, redeploy, and see a
// deploy whose requirements cannot be installed fail while the previous
// version keeps answering.
func TestConnectDeploy(t *testing.T) {
	connectClients(t)
	tools := pyTools(t) // uv, which Connect builds environments with
	p, dataDir := suiteWithIdentity(t,
		"ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM=", // mirror the host pip's index
		"PATH="+filepath.Join(tools, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	url := p.urls["Connect"]
	key := strings.TrimSpace(atriumCLI(t, dataDir, "", "users", "token", "admin", "--product", "connect"))
	if m := regexp.MustCompile(`atr_\S+`).FindString(key); m != "" {
		key = m
	}
	home := t.TempDir()

	if _, ok := rsconnectCLI(t, home, "add", "-s", url, "-n", "atrium", "-k", "not-a-key"); ok {
		t.Fatal("rsconnect add accepted an invalid API key")
	}
	if out, ok := rsconnectCLI(t, home, "add", "-s", url, "-n", "atrium", "-k", key); !ok || !strings.Contains(out, "Added Connect server") {
		t.Fatal("rsconnect add failed")
	}

	testdata := filepath.Join(repoRoot(t), "e2e", "testdata", "connect")

	// A static site.
	html := copyDir(t, filepath.Join(testdata, "html"))
	out, ok := rsconnectCLI(t, home, "deploy", "html", "-n", "atrium", html)
	if !ok || !strings.Contains(out, "Activated bundle") {
		t.Fatal("rsconnect deploy html failed or did not stream the task log")
	}
	htmlURL := contentURLPattern.FindStringSubmatch(out)[1]
	if status, body := keyGet(t, htmlURL, key); status != 200 || !strings.Contains(body, "Hello from a static bundle") {
		t.Fatalf("GET %s: %d %s", htmlURL, status, body)
	}

	// A FastAPI app; the log shows the environment being built.
	api := copyDir(t, filepath.Join(testdata, "fastapi"))
	out, ok = rsconnectCLI(t, home, "deploy", "fastapi", "-n", "atrium", api)
	if !ok || !strings.Contains(out, "uv pip install") || !strings.Contains(out, "/pypi/latest/simple/") {
		t.Fatal("rsconnect deploy fastapi failed or did not stream the environment build")
	}
	apiURL := contentURLPattern.FindStringSubmatch(out)[1]
	guid := filepath.Base(strings.TrimSuffix(apiURL, "/"))
	version := func() float64 {
		t.Helper()
		status, body := keyGet(t, apiURL, key)
		var v struct {
			Hello   string  `json:"hello"`
			Version float64 `json:"version"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &v) != nil || v.Hello != "atrium" {
			t.Fatalf("GET %s: %d %s", apiURL, status, body)
		}
		return v.Version
	}
	if v := version(); v != 1 {
		t.Fatalf("version %v, want 1", v)
	}
	// FastAPI behind the prefix: the docs point at the prefixed schema.
	if status, body := keyGet(t, apiURL+"docs", key); status != 200 || !strings.Contains(body, "/content/"+guid+"/openapi.json") {
		t.Fatalf("GET docs: %d %s", status, body)
	}

	// Redeploy the same directory with an environment variable (rsconnect
	// sets it through the content's environment API): the environment is
	// reused and the new process sees the variable.
	out, ok = rsconnectCLI(t, home, "deploy", "fastapi", "-n", "atrium", "-E", "GREETING=hej", api)
	if !ok || !strings.Contains(out, "Reusing Python") || !strings.Contains(out, guid) {
		t.Fatal("redeploy failed or did not reuse the environment")
	}
	if v := version(); v != 1 {
		t.Fatalf("version %v after redeploy, want 1", v)
	}
	if _, body := keyGet(t, apiURL, key); !strings.Contains(body, `"greeting":"hej"`) {
		t.Errorf("the app does not see the variable set with -E: %s", body)
	}
	// A vanity path serves the same content, with the same access checks.
	vreq, _ := http.NewRequest("PUT", strings.Split(apiURL, "/content/")[0]+"/__api__/v1/content/"+guid+"/vanity", strings.NewReader(`{"path":"/greeter/"}`))
	vreq.Header.Set("Authorization", "Key "+key)
	if resp, err := http.DefaultClient.Do(vreq); err != nil || resp.StatusCode != 200 {
		t.Fatalf("set vanity: %v %v", resp.StatusCode, err)
	}
	vanity := strings.Split(apiURL, "/content/")[0] + "/greeter/"
	if status, body := keyGet(t, vanity, key); status != 200 || !strings.Contains(body, `"hello":"atrium"`) {
		t.Errorf("GET %s: %d %s", vanity, status, body)
	}
	if status, _ := keyGet(t, vanity, "atr_not_a_key"); status != http.StatusUnauthorized {
		t.Errorf("vanity path with a bad key: %d", status)
	}
	if status, _ := keyGet(t, strings.TrimSuffix(vanity, "/")+"-not-it/", key); status != http.StatusNotFound {
		t.Errorf("unknown path: %d", status)
	}

	// The app learns who asks from RStudio-Connect-Credentials, and a
	// client cannot forge it.
	req, _ := http.NewRequest("GET", apiURL, nil)
	req.Header.Set("Authorization", "Key "+key)
	req.Header.Set("RStudio-Connect-Credentials", `{"user":"mallory","groups":[]}`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var who struct {
		Credentials string `json:"credentials"`
	}
	json.NewDecoder(resp.Body).Decode(&who)
	resp.Body.Close()
	if !strings.Contains(who.Credentials, `"user":"admin"`) || strings.Contains(who.Credentials, "mallory") {
		t.Errorf("credentials the app saw: %q", who.Credentials)
	}

	// A version whose requirements cannot be installed fails, and the
	// running one keeps answering.
	broken := copyDir(t, filepath.Join(testdata, "fastapi-broken"))
	out, ok = rsconnectCLI(t, home, "deploy", "fastapi", "-n", "atrium", "--app-id", guid, broken)
	if ok || !strings.Contains(out, "atrium-no-such-package-for-tests") || !strings.Contains(out, "Task exited with status 1") {
		t.Fatal("the broken deploy did not fail with the installer's error")
	}
	if v := version(); v != 1 {
		t.Fatalf("version %v after a failed deploy, want 1 (the old version)", v)
	}

	// Runtime caches, as an admin sees them with rsconnect: the Python
	// version the app was built with; a dry run changes nothing; a delete
	// takes the environment away, and the app, whose process it stopped,
	// answers again from an environment built anew.
	out, ok = rsconnectCLI(t, home, "system", "caches", "list", "-n", "atrium")
	var caches struct {
		Caches []struct {
			Language, Version, ImageName string `json:",omitempty"`
		} `json:"caches"`
	}
	if !ok || json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &caches) != nil || len(caches.Caches) != 1 || caches.Caches[0].Language != "Python" {
		t.Fatalf("rsconnect system caches list: %s", out)
	}
	pyVersion := caches.Caches[0].Version
	if out, ok := rsconnectCLI(t, home, "system", "caches", "delete", "-n", "atrium", "-l", "Python", "-V", pyVersion, "--dry-run"); !ok {
		t.Fatalf("rsconnect system caches delete --dry-run: %s", out)
	}
	if v := version(); v != 1 {
		t.Fatalf("version %v after a dry run, want 1", v)
	}
	if out, ok := rsconnectCLI(t, home, "system", "caches", "delete", "-n", "atrium", "-l", "Python", "-V", pyVersion); !ok {
		t.Fatalf("rsconnect system caches delete: %s", out)
	}
	if out, _ := rsconnectCLI(t, home, "system", "caches", "list", "-n", "atrium"); strings.Contains(out, pyVersion) {
		t.Fatalf("the cache is still listed after its delete: %s", out)
	}
	if v := version(); v != 1 {
		t.Fatalf("version %v after the cache delete, want 1", v)
	}

	// Anonymous browsers are sent to sign in; a bad key is refused.
	if status, _ := keyGet(t, apiURL, "atr_not_a_key"); status != http.StatusUnauthorized {
		t.Fatalf("bad key: %d", status)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ = http.NewRequest("GET", htmlURL, nil)
	req.Header.Set("Accept", "text/html")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "/__auth__/login") {
		t.Fatalf("anonymous browser: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}
