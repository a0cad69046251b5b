// Package keycloaktest runs a real Keycloak, an external OpenID provider, for
// tests of the suite's sign-on.
//
// Start installs Keycloak through scripts/keycloak.sh (Maven fetches the
// server distribution once into ${ATRIUM_CACHE:-$HOME/.cache/atrium}),
// imports a realm generated from a Realm value and serves it on a free
// loopback port until the test ends:
//
//	kc := keycloaktest.Start(t, keycloaktest.Realm{
//		Name: "atrium",
//		Clients: []keycloaktest.Client{{
//			ID: "atrium", Secret: "s3cret",
//			RedirectURIs: []string{suiteURL + "/__auth__/callback"},
//		}},
//		Users: []keycloaktest.User{{
//			Username: "alice", Password: "pw", Groups: []string{"atrium-admins"},
//		}},
//	})
//	// kc.Issuer is http://127.0.0.1:PORT/realms/atrium
//
// Every client is a confidential OpenID Connect client with the standard
// (authorization code) flow, its secret and redirect URIs; PKCE is accepted
// and, with Client.RequirePKCE, demanded. ID tokens, access tokens and
// userinfo carry a "groups" claim with the names (not paths) of the user's
// groups, and the usual profile and email claims (preferred_username, email,
// name, …). Users are enabled, their email verified, and have no required
// actions, so a password is all a login takes.
//
// Signing in as a browser does — one http.Client with a cookie jar:
//
//   - Server.Login drives an authorize URL the test built itself: it fetches
//     the login page, posts the credentials and returns the URL Keycloak
//     redirects to off its own host (the client's redirect URI with code and
//     state) without requesting it. Use it when no real relying party runs.
//
//   - SubmitLogin drives a real relying party: GET the product's login URL
//     with the client (it follows the redirects to Keycloak's login page), hand
//     that response to SubmitLogin, which posts the credentials with the same
//     client, so the client follows Keycloak's redirect back to the product's
//     callback and on; it returns the final response.
//
//     jar, _ := cookiejar.New(nil)
//     client := &http.Client{Jar: jar}
//     page, _ := client.Get(suiteURL + "/__auth__/login")
//     resp := keycloaktest.SubmitLogin(t, client, page, "alice", "pw")
//     // resp is the product's page after the callback; jar holds its session
//
// When Keycloak cannot be installed (no Maven, no JDK, no registry), Start
// skips the test, or fails it when $CI is set. It skips in -short mode too.
// A Keycloak takes about 20 to 40 s to start and about 500 MB of memory;
// share one per test function or package where you can.
package keycloaktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long Start waits for Keycloak to serve the realm.
var StartTimeout = 3 * time.Minute

// installTimeout bounds scripts/keycloak.sh: the first install downloads
// ~170 MB and primes the server (about a minute on an idle machine).
const installTimeout = 15 * time.Minute

// stopTimeout is how long a stopping Keycloak gets after SIGTERM before it is
// killed.
const stopTimeout = 20 * time.Second

// Server is a running Keycloak serving one realm.
type Server struct {
	// Issuer is the realm's issuer, http://127.0.0.1:PORT/realms/NAME; its
	// discovery document is Issuer + "/.well-known/openid-configuration".
	Issuer string
	// BaseURL is Keycloak's root, http://127.0.0.1:PORT.
	BaseURL string
	// AdminURL is the realm's admin REST API, BaseURL + "/admin/realms/NAME";
	// call it with a bearer token from AdminToken.
	AdminURL string
	// AdminUser and AdminPassword sign in to the master realm (the admin
	// console is BaseURL + "/admin/").
	AdminUser, AdminPassword string
	// Realm is what was imported.
	Realm Realm
	// Home is this server's private Keycloak home; LogPath its log file.
	Home, LogPath string

	host string // 127.0.0.1:PORT
}

// repoRoot is the checkout this package sits in.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// unavailable skips the test, or fails it on CI, when Keycloak cannot be had.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("keycloaktest: Keycloak is unavailable: %s", msg)
	}
	t.Skipf("keycloaktest: Keycloak is unavailable, skipping (set CI=1 to fail instead): %s", msg)
}

// script runs scripts/keycloak.sh ARGS and returns its one line of output.
func script(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(), "scripts", "keycloak.sh"), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/keycloak.sh %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.Bytes(), 30))
	}
	out := strings.TrimSpace(stdout.String())
	if out == "" || strings.Contains(out, "\n") {
		return "", fmt.Errorf("scripts/keycloak.sh %s printed %q, want one path", strings.Join(args, " "), out)
	}
	return out, nil
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("keycloaktest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// environ is the process environment without anything that would configure
// Keycloak or its JVM behind the harness's back.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "KC_"), strings.HasPrefix(name, "KEYCLOAK_"),
			strings.HasPrefix(name, "JAVA_OPTS"), name == "JAVA_HOME", name == "JAVA",
			name == "JAVA_ADD_OPENS", name == "DEBUG", name == "DEBUG_PORT":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Start runs Keycloak with realm imported and stops it when the test ends.
// See the package documentation.
func Start(t testing.TB, realm Realm) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("keycloaktest: starts a Keycloak server; skipped in -short mode")
	}
	realmJSON, err := realm.JSON()
	if err != nil {
		t.Fatalf("keycloaktest: %v", err)
	}

	began := time.Now()
	if _, err := script("install"); err != nil {
		unavailable(t, "%v", err)
	}
	javaHome, err := script("java-home")
	if err != nil {
		unavailable(t, "%v", err)
	}
	home, err := script("instance", filepath.Join(t.TempDir(), "keycloak"))
	if err != nil {
		unavailable(t, "%v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Logf("keycloaktest: installed Keycloak in %v", d.Round(time.Second))
	}

	if err := os.WriteFile(filepath.Join(home, "data", "import", realm.Name+"-realm.json"), realmJSON, 0o600); err != nil {
		t.Fatalf("keycloaktest: %v", err)
	}

	port := freePort(t)
	mgmtPort := freePort(t)
	for mgmtPort == port {
		mgmtPort = freePort(t)
	}
	host := "127.0.0.1:" + strconv.Itoa(port)
	s := &Server{
		BaseURL:       "http://" + host,
		Issuer:        "http://" + host + "/realms/" + url.PathEscape(realm.Name),
		AdminURL:      "http://" + host + "/admin/realms/" + url.PathEscape(realm.Name),
		AdminUser:     "admin",
		AdminPassword: randomHex(12),
		Realm:         realm,
		Home:          home,
		LogPath:       filepath.Join(home, "keycloak.log"),
		host:          host,
	}

	logFile, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatalf("keycloaktest: %v", err)
	}
	cmd := exec.Command(filepath.Join(home, "bin", "kc.sh"), "start-dev",
		"--http-host=127.0.0.1",
		"--http-port="+strconv.Itoa(port),
		"--http-management-port="+strconv.Itoa(mgmtPort),
		// Pin the issuer: whoever asks, by whatever name, gets the same one.
		"--hostname="+s.BaseURL,
		"--import-realm",
	)
	cmd.Dir = home
	cmd.Env = append(environ(),
		"JAVA_HOME="+javaHome,
		// Small heap; C1 only: starts faster on two cores and uses less memory.
		"JAVA_OPTS_KC_HEAP=-Xms64m -Xmx768m",
		"JAVA_OPTS_APPEND=-XX:TieredStopAtLevel=1",
		// The build options stay at their defaults, as scripts/keycloak.sh
		// primed them (changing one costs a ~20 s rebuild): database
		// dev-file, in home/data/h2 under the test's temp dir; health and
		// metrics off.
		"KC_BOOTSTRAP_ADMIN_USERNAME="+s.AdminUser,
		"KC_BOOTSTRAP_ADMIN_PASSWORD="+s.AdminPassword,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group, so a kill reaches kc.sh and its java alike.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("keycloaktest: start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() { s.stop(t, cmd, exited) })

	if err := s.waitReady(exited, &waitErr); err != nil {
		t.Fatalf("keycloaktest: %v\nlast lines of %s:\n%s", err, s.LogPath, s.logTail(40))
	}
	t.Logf("keycloaktest: Keycloak ready at %s in %v", s.Issuer, time.Since(started).Round(100*time.Millisecond))
	if log, err := os.ReadFile(s.LogPath); err == nil && bytes.Contains(log, []byte("Updating the configuration")) {
		t.Logf("keycloaktest: Keycloak rebuilt itself for dev mode at start (~20 s); scripts/keycloak.sh install primes the cache so that it need not")
	}
	return s
}

// waitReady polls the discovery document until it answers 200, Keycloak
// exits, or StartTimeout passes.
func (s *Server) waitReady(exited <-chan struct{}, waitErr *error) error {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	discovery := s.Issuer + "/.well-known/openid-configuration"
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, discovery, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("Keycloak exited before it served %s: %v", discovery, *waitErr)
		case <-ctx.Done():
			return fmt.Errorf("Keycloak did not serve %s within %v", discovery, StartTimeout)
		case <-tick.C:
		}
	}
}

// stop ends Keycloak: SIGTERM (kc.sh passes it on to java), then SIGKILL to
// the whole process group.
func (s *Server) stop(t testing.TB, cmd *exec.Cmd, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		t.Logf("keycloaktest: Keycloak ignored SIGTERM for %v; killing it", stopTimeout)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// kc.sh may be gone while a java it started lingers: sweep the group.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// logTail is the end of Keycloak's log.
func (s *Server) logTail(lines int) string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return err.Error()
	}
	return tail(b, lines)
}

func tail(b []byte, lines int) string {
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// AdminToken returns an access token of the master realm's admin, for
// AdminURL and the rest of the admin REST API.
func (s *Server) AdminToken(t testing.TB) string {
	t.Helper()
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {"admin-cli"},
		"username":   {s.AdminUser},
		"password":   {s.AdminPassword},
	}
	resp, err := http.PostForm(s.BaseURL+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatalf("keycloaktest: admin token: %v", err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		t.Fatalf("keycloaktest: admin token: %s: %v", resp.Status, err)
	}
	if tok.AccessToken == "" {
		t.Fatalf("keycloaktest: admin token: %s: %s %s", resp.Status, tok.Error, tok.Description)
	}
	return tok.AccessToken
}
