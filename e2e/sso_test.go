package e2e_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// suiteWithIdentity starts `atrium up` with the embedded provider on free
// ports and returns it with its data dir.
func suiteWithIdentity(t *testing.T, env ...string) (*suiteProc, string) {
	t.Helper()
	dir := t.TempDir()
	openToContentUser(t, dir)
	cfgPath := filepath.Join(dir, "atrium.toml")
	// Tests that do not exercise the mirror must not reach for an
	// upstream index: point it at a port nothing listens on.
	env = append([]string{"ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM=http://127.0.0.1:1/simple/"}, env...)
	if err := os.WriteFile(cfgPath, []byte(freePortsConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	p := startAtrium(t, env, append(displayNames(), "Identity"), "up", "--config", cfgPath, "--data-dir", dataDir)
	return p, dataDir
}

// openToContentUser lets others search (not list) dir and its parent, the
// test's 0700 temp dirs: run as root, Connect runs content as an
// unprivileged user, which must reach the data dir below them as it would
// reach /var/lib/atrium.
func openToContentUser(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

func newBrowser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

// signIn opens a product page in c; if the provider asks for a password it
// fills the sign-in form. It returns the page finally shown.
func signIn(t *testing.T, c *http.Client, pageURL, username, password string) (string, string) {
	t.Helper()
	u, status, body := browse(t, c, "GET", pageURL, nil)
	if strings.Contains(body, `name="password"`) {
		f := formWith(t, u, body, "username", "password")
		u, status, body = submit(t, c, f, map[string]string{"username": username, "password": password})
	}
	if status != 200 {
		t.Fatalf("signing in at %s ended at %s with %d:\n%s", pageURL, u, status, body)
	}
	return u.String(), body
}

type me struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Role     string `json:"role"`
}

// whoAmI asks a product who c is; ok is false when it says nobody.
func whoAmI(t *testing.T, c *http.Client, base string, header ...string) (me, bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/__auth__/me", nil)
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return me{}, false
	}
	var m me
	if resp.StatusCode != 200 {
		t.Fatalf("%s/__auth__/me: %d", base, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m, true
}

func atriumCLI(t *testing.T, dataDir, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(atriumBinary(t), args...)
	cmd.Env = append(os.Environ(), "ATRIUM_SHARED_DATA_DIR="+dataDir)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("atrium %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestSingleSignOn is the user story: sign in once as admin with the
// password atrium up wrote, be signed in to all three products, sign out of
// one and be asked again everywhere.
func TestSingleSignOn(t *testing.T) {
	p, dataDir := suiteWithIdentity(t)
	pwFile := filepath.Join(dataDir, "admin-password")
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatalf("no admin password file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin-password mode %v, want 0600", fi.Mode().Perm())
	}
	pw, _ := os.ReadFile(pwFile)
	password := strings.TrimSpace(string(pw))

	browser := newBrowser(t)
	connect, workbench, pm := p.urls["Connect"], p.urls["Workbench"], p.urls["Package Manager"]

	// Before signing in, products answer API clients 401 and send browsers
	// to the sign-in page.
	if _, ok := whoAmI(t, browser, connect); ok {
		t.Fatal("anonymous request is signed in")
	}
	u, _, body := browse(t, browser, "GET", connect+"/", nil)
	if !strings.HasPrefix(u.String(), p.urls["Identity"]) || !strings.Contains(body, `name="password"`) {
		t.Fatalf("anonymous visit to Connect ended at %s, not at the sign-in form", u)
	}

	// One sign-in…
	_, body = signIn(t, browser, connect+"/", "admin", password)
	if !strings.Contains(body, "admin") || !strings.Contains(body, "Atrium Connect") {
		t.Errorf("Connect does not show who is signed in:\n%s", body)
	}
	// …signs in to all three, with no second password prompt.
	for name, base := range map[string]string{"Connect": connect, "Workbench": workbench, "Package Manager": pm} {
		u, status, body := browse(t, browser, "GET", base+"/", nil)
		if status != 200 || strings.Contains(body, `name="password"`) || !strings.HasPrefix(u.String(), base) {
			t.Errorf("%s asked again or failed: %s %d", name, u, status)
		}
		if !strings.Contains(body, "admin") {
			t.Errorf("%s does not show the signed-in user", name)
		}
		m, ok := whoAmI(t, browser, base)
		if !ok || m.Username != "admin" || m.Role != "admin" {
			t.Errorf("%s who-am-I: %+v %v", name, m, ok)
		}
	}

	// Signing out of one product signs out of the provider and the suite.
	_, _, body = browse(t, browser, "GET", workbench+"/", nil)
	logout := formWith(t, mustURL(t, workbench), body, "csrf_token")
	u, _, body = submit(t, browser, logout, nil)
	if !strings.Contains(body, `name="password"`) && !strings.Contains(strings.ToLower(body), "signed out") {
		t.Errorf("after sign-out, ended at %s:\n%s", u, body)
	}
	for name, base := range map[string]string{"Connect": connect, "Workbench": workbench, "Package Manager": pm} {
		if m, ok := whoAmI(t, browser, base); ok {
			t.Errorf("%s still signed in as %s after signing out", name, m.Username)
		}
	}
	u, _, body = browse(t, browser, "GET", pm+"/", nil)
	if !strings.Contains(body, `name="password"`) {
		t.Errorf("next product visit did not ask for the password again: %s", u)
	}

	// The password file is never overwritten.
	if err := p.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestUsersRolesLocksAndKeys drives `atrium users` against a running suite.
func TestUsersRolesLocksAndKeys(t *testing.T) {
	p, dataDir := suiteWithIdentity(t)
	connect, workbench, pm := p.urls["Connect"], p.urls["Workbench"], p.urls["Package Manager"]

	out := atriumCLI(t, dataDir, "correct horse battery\n", "users", "add", "alice", "--role", "publisher", "--password-stdin")
	if !strings.Contains(out, "alice") {
		t.Errorf("users add said %q", out)
	}
	list := atriumCLI(t, dataDir, "", "users", "list", "-o", "json")
	if !strings.Contains(list, `"username": "alice"`) || !strings.Contains(list, `"role": "publisher"`) {
		t.Errorf("users list:\n%s", list)
	}

	alice := newBrowser(t)
	for _, base := range []string{pm, connect, workbench} {
		// The first visit asks for the password, the others go through.
		signIn(t, alice, base+"/", "alice", "correct horse battery")
	}
	if m, ok := whoAmI(t, alice, connect); !ok || m.Role != "publisher" {
		t.Errorf("alice on Connect: %+v %v", m, ok)
	}
	atriumCLI(t, dataDir, "", "users", "set-role", "alice", "admin")
	if m, _ := whoAmI(t, alice, workbench); m.Role != "admin" {
		t.Errorf("role change not seen: %+v", m)
	}

	key := strings.TrimSpace(atriumCLI(t, dataDir, "", "users", "token", "alice", "--product", "connect"))
	anon := &http.Client{}
	if m, ok := whoAmI(t, anon, connect, "Authorization", "Key "+key); !ok || m.Username != "alice" {
		t.Errorf("Connect did not accept the key: %+v %v", m, ok)
	}
	if _, ok := whoAmI(t, anon, workbench, "Authorization", "Key "+key); ok {
		t.Error("a Connect key worked on Workbench")
	}
	allKey := strings.TrimSpace(atriumCLI(t, dataDir, "", "users", "token", "alice"))
	req, _ := http.NewRequest("GET", pm+"/__auth__/me", nil)
	req.SetBasicAuth("__token__", allKey)
	resp, err := anon.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("Package Manager basic auth __token__: %d", resp.StatusCode)
	}
	if _, ok := whoAmI(t, anon, connect, "Authorization", "Key atr_wrong"); ok {
		t.Error("a wrong key was accepted")
	}

	// Locking stops sessions and keys at once.
	atriumCLI(t, dataDir, "", "users", "lock", "alice")
	if _, ok := whoAmI(t, alice, connect); ok {
		t.Error("locked user's session still works")
	}
	if _, ok := whoAmI(t, anon, connect, "Authorization", "Key "+key); ok {
		t.Error("locked user's key still works")
	}
	fresh := newBrowser(t)
	u, _, body := browse(t, fresh, "GET", connect+"/", nil)
	f := formWith(t, u, body, "username", "password")
	_, status, body := submit(t, fresh, f, map[string]string{"username": "alice", "password": "correct horse battery"})
	if status == 200 && !strings.Contains(body, "locked") {
		t.Errorf("locked user could sign in: %d", status)
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
