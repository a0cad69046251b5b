package e2e_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestConnectModes deploys one app of each Python mode Connect runs
// besides FastAPI with the real rsconnect CLI: a Flask app (python-api,
// gunicorn), Dash, Streamlit, Bokeh and Shiny. Each must answer under
// /content/{guid}/ with links and assets that resolve there (the app was
// told its prefix), keep its websocket working through the proxy where it
// has one, and redeploy. The environments install the frameworks from
// Package Manager's pypi repository, which mirrors the host's index.
func TestConnectModes(t *testing.T) {
	connectClients(t)
	tools := pyTools(t)
	p, dataDir := suiteWithIdentity(t,
		"ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM=",
		"PATH="+filepath.Join(tools, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	server := p.urls["Connect"]
	key := strings.TrimSpace(atriumCLI(t, dataDir, "", "users", "token", "admin", "--product", "connect"))
	if m := regexp.MustCompile(`atr_\S+`).FindString(key); m != "" {
		key = m
	}
	home := t.TempDir()
	if out, ok := rsconnectCLI(t, home, "add", "-s", server, "-n", "atrium", "-k", key); !ok || !strings.Contains(out, "Added Connect server") {
		t.Fatal("rsconnect add failed")
	}
	testdata := filepath.Join(repoRoot(t), "e2e", "testdata", "connect")

	// deploy publishes testdata/<sample> with `rsconnect deploy <kind>`,
	// checks it with check, redeploys it and checks it again. check gets
	// the content URL and the content's prefix.
	deploy := func(t *testing.T, kind, sample string, check func(t *testing.T, contentURL, prefix string)) {
		dir := copyDir(t, filepath.Join(testdata, sample))
		out, ok := rsconnectCLI(t, home, "deploy", kind, "-n", "atrium", dir)
		m := contentURLPattern.FindStringSubmatch(out)
		if !ok || m == nil || !strings.Contains(out, "Activated bundle") {
			t.Fatalf("rsconnect deploy %s failed", kind)
		}
		contentURL := m[1]
		guid := filepath.Base(strings.TrimSuffix(contentURL, "/"))
		prefix := "/content/" + guid + "/"
		check(t, contentURL, prefix)

		out, ok = rsconnectCLI(t, home, "deploy", kind, "-n", "atrium", dir)
		if !ok || !strings.Contains(out, "Reusing Python") || !strings.Contains(out, guid) {
			t.Fatalf("redeploying %s failed or did not reuse its environment", kind)
		}
		check(t, contentURL, prefix)
	}

	// get fetches a path of the server (or a URL) with the API key and
	// wants a 200.
	get := func(t *testing.T, u string) string {
		t.Helper()
		if strings.HasPrefix(u, "/") {
			u = server + u
		}
		status, body := keyGet(t, u, key)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %.500s", u, status, body)
		}
		return body
	}
	// resolve resolves a link of the page at base, as a browser would.
	resolve := func(t *testing.T, base, ref string) string {
		t.Helper()
		b, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		r, err := url.Parse(html.UnescapeString(ref))
		if err != nil {
			t.Fatal(err)
		}
		return b.ResolveReference(r).String()
	}
	// find returns the first submatch of pattern in body.
	find := func(t *testing.T, pattern, body string) string {
		t.Helper()
		m := regexp.MustCompile(pattern).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no %s in:\n%.2000s", pattern, body)
		}
		return m[1]
	}

	t.Run("python-api", func(t *testing.T) {
		deploy(t, "api", "api", func(t *testing.T, contentURL, prefix string) {
			page := get(t, contentURL)
			if !strings.Contains(page, "Hello from Flask") {
				t.Fatalf("page: %s", page)
			}
			// url_for built the link under the prefix (SCRIPT_NAME).
			link := find(t, `id="hello" href="([^"]+)"`, page)
			if link != prefix+"hello/atrium" {
				t.Fatalf("url_for gave %q, want %q", link, prefix+"hello/atrium")
			}
			var v struct {
				Hello      string `json:"hello"`
				ScriptRoot string `json:"script_root"`
			}
			if err := json.Unmarshal([]byte(get(t, link)), &v); err != nil || v.Hello != "atrium" || v.ScriptRoot != strings.TrimSuffix(prefix, "/") {
				t.Fatalf("GET %s: %+v %v", link, v, err)
			}
		})
	})

	t.Run("python-dash", func(t *testing.T) {
		deploy(t, "dash", "dash", func(t *testing.T, contentURL, prefix string) {
			page := get(t, contentURL)
			var cfg struct {
				RequestsPrefix string `json:"requests_pathname_prefix"`
			}
			raw := find(t, `(?s)<script id="_dash-config" type="application/json">(.*?)</script>`, page)
			if err := json.Unmarshal([]byte(raw), &cfg); err != nil || cfg.RequestsPrefix != prefix {
				t.Fatalf("_dash-config %s: %+v %v", raw, cfg, err)
			}
			get(t, find(t, `src="(/content/[^"]+/_dash-component-suites/[^"]+)"`, page))
			if layout := get(t, contentURL+"_dash-layout"); !strings.Contains(layout, "Hello from Dash") {
				t.Fatalf("layout: %s", layout)
			}
		})
	})

	t.Run("python-streamlit", func(t *testing.T) {
		deploy(t, "streamlit", "streamlit", func(t *testing.T, contentURL, prefix string) {
			page := get(t, contentURL)
			if !strings.Contains(page, `<div id="root">`) {
				t.Fatalf("page: %.2000s", page)
			}
			get(t, resolve(t, contentURL, find(t, `<script[^>]+src="([^"]+)"`, page)))
			if health := get(t, contentURL+"_stcore/health"); health != "ok" {
				t.Fatalf("health: %q", health)
			}
			wsHandshake(t, server, prefix+"_stcore/stream", key, "")
		})
	})

	t.Run("python-bokeh", func(t *testing.T) {
		deploy(t, "bokeh", "bokeh", func(t *testing.T, contentURL, prefix string) {
			// bokeh serve redirects the prefix to the app, named after
			// its file.
			page := get(t, contentURL)
			if !strings.Contains(page, "<title>Hello from Bokeh</title>") {
				t.Fatalf("page: %.2000s", page)
			}
			get(t, find(t, `src="(`+regexp.QuoteMeta(prefix)+`static/js/bokeh\.min\.js[^"]*)"`, page))
			// The session's token is the websocket's subprotocol.
			token := find(t, `"token":"([^"]+)"`, page)
			wsHandshake(t, server, prefix+"app/ws", key, "bokeh, "+token)
		})
	})

	t.Run("python-shiny", func(t *testing.T) {
		deploy(t, "shiny", "shiny", func(t *testing.T, contentURL, prefix string) {
			page := get(t, contentURL)
			if !strings.Contains(page, "Hello from Shiny") {
				t.Fatalf("page: %.2000s", page)
			}
			get(t, resolve(t, contentURL, find(t, `src="(lib/shiny-[^"]+/shiny[^"]*\.js)"`, page)))
			wsHandshake(t, server, prefix+"websocket/", key, "")
		})
	})
}

// wsHandshake opens a websocket at path through Connect's proxy with the
// API key, as a browser on the server's page would (its Origin), and
// wants 101 Switching Protocols.
func wsHandshake(t *testing.T, server, path, key, protocol string) {
	t.Helper()
	req, err := http.NewRequest("GET", server+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Key "+key)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Origin", server)
	if protocol != "" {
		req.Header.Set("Sec-WebSocket-Protocol", protocol)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("websocket %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket %s: %s, want 101", path, resp.Status)
	}
}
