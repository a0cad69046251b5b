package e2e_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConnectBootstrap: with CONNECT_BOOTSTRAP_ENABLED and a base64 secret,
// the real `rsconnect bootstrap` mints the first administrator's API key
// on a fresh server, and is refused once an administrator has a key.
func TestConnectBootstrap(t *testing.T) {
	connectClients(t)
	secret := make([]byte, 32)
	rand.Read(secret)
	b64 := base64.StdEncoding.EncodeToString(secret)
	keyfile := filepath.Join(t.TempDir(), "bootstrap.key")
	os.WriteFile(keyfile, []byte(b64), 0o600)
	p, _ := suiteWithIdentity(t, "CONNECT_BOOTSTRAP_ENABLED=true", "CONNECT_BOOTSTRAP_SECRETKEY="+b64)
	server := p.urls["Connect"]
	home := t.TempDir()

	// A token signed with another secret is refused and mints nothing.
	other := filepath.Join(t.TempDir(), "other.key")
	wrong := make([]byte, 32)
	rand.Read(wrong)
	os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString(wrong)), 0o600)
	// rsconnect prints {"status", "api_key", "message"} whatever happened.
	bootstrap := func(keyfile string) (int, string) {
		t.Helper()
		out, _ := rsconnectCLI(t, home, "bootstrap", "-s", server, "--jwt-keypath", keyfile)
		var res struct {
			Status int    `json:"status"`
			APIKey string `json:"api_key"`
		}
		i := strings.Index(out, "{")
		if i < 0 || json.Unmarshal([]byte(out[i:]), &res) != nil {
			t.Fatalf("bootstrap output: %q", out)
		}
		return res.Status, res.APIKey
	}
	if status, key := bootstrap(other); status != 401 || key != "" {
		t.Fatalf("bootstrap with a wrong secret: %d %q, want 401 and no key", status, key)
	}
	status, key := bootstrap(keyfile)
	if status != 200 || key == "" {
		t.Fatalf("bootstrap: %d %q", status, key)
	}
	res := struct{ APIKey string }{key}
	if status, body := keyGet(t, server+"/__api__/v1/user", res.APIKey); status != 200 || !strings.Contains(body, `"user_role":"administrator"`) {
		t.Errorf("the bootstrapped key: %d %s", status, body)
	}
	if status, key := bootstrap(keyfile); status != 403 || key != "" {
		t.Errorf("a second bootstrap: %d %q, want 403 and no key", status, key)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestConnectBootstrapDisabled: without the switch the endpoint does not
// exist.
func TestConnectBootstrapDisabled(t *testing.T) {
	p, _ := suiteWithIdentity(t)
	status, _ := keyGet(t, p.urls["Connect"]+"/__api__/v1/experimental/bootstrap", "")
	if status != 404 && status != 405 {
		t.Errorf("bootstrap endpoint without CONNECT_BOOTSTRAP_ENABLED: %d", status)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}
