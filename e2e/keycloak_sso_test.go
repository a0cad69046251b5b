package e2e_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/e2e/keycloaktest"
)

// freeLoopbackPort reserves nothing: it finds a port that was free a moment
// ago. The suite's redirect URIs must be registered at Keycloak before the
// suite starts, so the ports are chosen first.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// openPage GETs a page as a browser does (asking for HTML, so products
// redirect to sign-in rather than answer 401); the caller closes the body.
func openPage(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestExternalProviderKeycloak points the suite at a real Keycloak by
// configuration alone: the embedded provider does not start, every product
// signs in through Keycloak, one sign-in covers all three, and the groups
// claim decides the role.
func TestExternalProviderKeycloak(t *testing.T) {
	type product struct{ name, display, url, secret string }
	var prods []product
	var clients []keycloaktest.Client
	for _, p := range products {
		port := freeLoopbackPort(t)
		pr := product{p.name, p.display, fmt.Sprintf("http://127.0.0.1:%d", port), "secret-" + p.name}
		prods = append(prods, pr)
		clients = append(clients, keycloaktest.Client{
			ID: "atrium-" + p.name, Secret: pr.secret, RequirePKCE: true,
			RedirectURIs:           []string{pr.url + "/__auth__/callback"},
			PostLogoutRedirectURIs: []string{pr.url + "/"},
		})
	}
	kc := keycloaktest.Start(t, keycloaktest.Realm{
		Name:    "atrium",
		Clients: clients,
		Groups:  []string{"atrium-admins", "atrium-publishers"},
		Users: []keycloaktest.User{
			{Username: "alice", Password: "alice-pw-123", Groups: []string{"atrium-admins"}},
			{Username: "bob", Password: "bob-pw-1234", Groups: []string{"atrium-publishers"}},
			{Username: "carol", Password: "carol-pw-12"},
		},
	})

	env := []string{
		"ATRIUM_AUTH_ISSUER=" + kc.Issuer,
		"ATRIUM_AUTH_ADMIN_GROUPS=atrium-admins",
		"ATRIUM_AUTH_PUBLISHER_GROUPS=atrium-publishers",
		// The identity port is never bound with an external issuer; a
		// clash here would show it is.
		"ATRIUM_IDENTITY_LISTEN=127.0.0.1:1",
	}
	for _, p := range prods {
		up := strings.ToUpper(p.name)
		env = append(env,
			"ATRIUM_"+up+"_LISTEN="+strings.TrimPrefix(p.url, "http://"),
			"ATRIUM_"+up+"_OIDC_CLIENT_SECRET="+p.secret)
	}
	dataDir := t.TempDir()
	s := startAtrium(t, env, displayNames(), "up", "--data-dir", dataDir)
	if _, ok := s.urls["Identity"]; ok {
		t.Error("the embedded provider started although an external issuer is configured")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "admin-password")); !os.IsNotExist(err) {
		t.Errorf("admin-password written with an external provider: %v", err)
	}

	cases := []struct{ user, password, role string }{
		{"alice", "alice-pw-123", "admin"},
		{"bob", "bob-pw-1234", "publisher"},
		{"carol", "carol-pw-12", "viewer"},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			browser := newBrowser(t)
			for i, p := range prods {
				resp := openPage(t, browser, p.url+"/")
				if i == 0 {
					if !strings.HasPrefix(resp.Request.URL.String(), kc.Issuer) {
						t.Fatalf("%s sent the browser to %s, not to Keycloak", p.display, resp.Request.URL)
					}
					resp = keycloaktest.SubmitLogin(t, browser, resp, tc.user, tc.password)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Atrium "+p.display) {
					t.Fatalf("%s after Keycloak sign-in: %s %d\n%s", p.display, resp.Request.URL, resp.StatusCode, body)
				}
				m, ok := whoAmI(t, browser, p.url)
				if !ok || m.Username != tc.user || m.Role != tc.role {
					t.Errorf("%s who-am-I: %+v %v, want %s as %s", p.display, m, ok, tc.user, tc.role)
				}
			}
		})
	}

	// Signing out of a product ends its session and Keycloak's: the next
	// visit asks for the password again.
	browser := newBrowser(t)
	resp := openPage(t, browser, prods[0].url+"/")
	resp = keycloaktest.SubmitLogin(t, browser, resp, "alice", "alice-pw-123")
	resp.Body.Close()
	u, _, body := browse(t, browser, "GET", prods[0].url+"/", nil)
	logout := formWith(t, u, body, "csrf_token")
	submit(t, browser, logout, nil)
	if _, ok := whoAmI(t, browser, prods[0].url); ok {
		t.Error("still signed in to Connect after signing out")
	}
	u, _, _ = browse(t, browser, "GET", prods[0].url+"/", nil)
	if !strings.HasPrefix(u.String(), kc.Issuer) {
		t.Errorf("after sign-out, Connect went to %s without asking Keycloak for the password", u)
	}
	if err := s.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}
