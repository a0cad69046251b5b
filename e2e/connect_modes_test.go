package e2e_test

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConnectModes deploys one app of each Python mode Connect runs
// besides FastAPI with the real rsconnect CLI: a Flask app (python-api,
// gunicorn), Dash, Streamlit, Bokeh, Shiny, Panel, Gradio and a Voilà
// notebook. Each must answer under /content/{guid}/ with links and assets
// that resolve there (the app was told its prefix), keep its websocket
// (or, for Gradio, its event stream) working through the proxy, and
// redeploy. The environments install the frameworks from Package
// Manager's pypi repository, which mirrors the host's index.
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

	t.Run("python-panel", func(t *testing.T) {
		deploy(t, "panel", "panel", func(t *testing.T, contentURL, prefix string) {
			// panel serve, like bokeh serve, redirects the prefix to the
			// app named after its file; its assets are relative to it.
			page := get(t, contentURL)
			if !strings.Contains(page, "<title>Hello from Panel</title>") {
				t.Fatalf("page: %.2000s", page)
			}
			appURL := contentURL + "app"
			for _, pattern := range []string{`src="(static/js/bokeh\.min\.js[^"]*)"`, `src="(static/extensions/panel/panel\.min\.js[^"]*)"`} {
				asset := resolve(t, appURL, find(t, pattern, page))
				if !strings.Contains(asset, prefix+"static/") {
					t.Fatalf("asset %s is not under %s", asset, prefix)
				}
				get(t, asset)
			}
			token := find(t, `"token":"([^"]+)"`, page)
			wsHandshake(t, server, prefix+"app/ws", key, "bokeh, "+token)
		})
	})

	t.Run("python-gradio", func(t *testing.T) {
		deploy(t, "gradio", "gradio", func(t *testing.T, contentURL, prefix string) {
			page := get(t, contentURL)
			if !strings.Contains(page, "Hello from Gradio") {
				t.Fatalf("page: %.2000s", page)
			}
			// Gradio's config names the public root its client calls:
			// this server's URL and the prefix.
			if root := find(t, `"root":\s*"([^"]+)"`, page); root != strings.TrimSuffix(contentURL, "/") {
				t.Fatalf("gradio root %q, want %q", root, strings.TrimSuffix(contentURL, "/"))
			}
			asset := resolve(t, contentURL, find(t, `<script[^>]+src="([^"]+\.js)"`, page))
			if !strings.Contains(asset, prefix) {
				t.Fatalf("asset %s is not under %s", asset, prefix)
			}
			get(t, asset)
			// Gradio's client has no websocket: it queues a call and reads
			// the result from a server-sent event stream, which must come
			// through the proxy.
			status, body := keyPost(t, server+prefix+"gradio_api/call/greet", key, `{"data": ["atrium"]}`)
			var call struct {
				EventID string `json:"event_id"`
			}
			if status != http.StatusOK || json.Unmarshal([]byte(body), &call) != nil || call.EventID == "" {
				t.Fatalf("POST gradio_api/call/greet: %d %s", status, body)
			}
			events := get(t, prefix+"gradio_api/call/greet/"+call.EventID)
			if !strings.Contains(events, "event: complete") || !strings.Contains(events, "Hello atrium from Gradio") {
				t.Fatalf("event stream: %s", events)
			}
		})
	})

	t.Run("jupyter-voila", func(t *testing.T) {
		deploy(t, "voila", "voila", func(t *testing.T, contentURL, prefix string) {
			// Voilà runs the notebook in a kernel before it answers.
			page := get(t, contentURL)
			if !strings.Contains(page, "computed by the kernel: 42") {
				t.Fatalf("page: %.3000s", page)
			}
			get(t, find(t, `src="(`+regexp.QuoteMeta(prefix)+`voila/static/voila\.js[^"]*)"`, page))
			get(t, find(t, `href="(`+regexp.QuoteMeta(prefix)+`voila/templates/[^"]+\.css[^"]*)"`, page))
			// The page's kernel answers over its websocket through the
			// proxy. Voilà refuses execute requests from the page, so ask
			// for the kernel's info.
			kernel := find(t, `"kernelId":\s*"([^"]+)"`, page)
			ws := wsOpen(t, server, prefix+"api/kernels/"+kernel+"/channels", key, "")
			req := `{"header": {"msg_id": "atrium-e2e-1", "username": "e2e", "session": "atrium-e2e", "msg_type": "kernel_info_request", "version": "5.3"},
				"parent_header": {}, "metadata": {}, "content": {}, "channel": "shell"}`
			if err := ws.WriteText([]byte(req)); err != nil {
				t.Fatal(err)
			}
			for {
				raw, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("kernel websocket: %v", err)
				}
				var m struct {
					MsgType      string `json:"msg_type"`
					ParentHeader struct {
						MsgID string `json:"msg_id"`
					} `json:"parent_header"`
					Content struct {
						Status         string `json:"status"`
						Implementation string `json:"implementation"`
					} `json:"content"`
				}
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("kernel message %.500s: %v", raw, err)
				}
				if m.MsgType == "kernel_info_reply" && m.ParentHeader.MsgID == "atrium-e2e-1" {
					if m.Content.Status != "ok" || m.Content.Implementation != "ipython" {
						t.Fatalf("kernel_info_reply %s", raw)
					}
					break
				}
			}
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
	wsOpen(t, server, path, key, protocol).Close()
}

// wsConn is the client end of a websocket: just enough of RFC 6455 to
// exchange text messages with an app through the proxy.
type wsConn struct {
	rw    io.ReadWriteCloser
	r     *bufio.Reader
	timer *time.Timer
}

// wsOpen is wsHandshake's handshake, returning the open connection. The
// connection is closed after a minute so a silent app cannot hang the
// test.
func wsOpen(t *testing.T, server, path, key, protocol string) *wsConn {
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
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		t.Fatalf("websocket %s: %s, want 101", path, resp.Status)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		t.Fatalf("websocket %s: the response body is not writable", path)
	}
	c := &wsConn{rw: rw, r: bufio.NewReader(rw)}
	c.timer = time.AfterFunc(time.Minute, func() { rw.Close() })
	t.Cleanup(func() { c.Close() })
	return c
}

// Close ends the connection without a closing handshake; the apps only
// see a dropped client.
func (c *wsConn) Close() {
	c.timer.Stop()
	c.rw.Close()
}

// WriteText sends msg as one masked text frame, as clients must.
func (c *wsConn) WriteText(msg []byte) error {
	hdr := []byte{0x81} // FIN, text
	switch n := len(msg); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return err
	}
	frame := append(hdr, mask[:]...)
	for i, b := range msg {
		frame = append(frame, b^mask[i%4])
	}
	_, err := c.rw.Write(frame)
	return err
}

// ReadMessage returns the next text or binary message, reassembling
// fragments and skipping pings and pongs.
func (c *wsConn) ReadMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, opcode := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if h[1]&0x80 != 0 {
			return nil, fmt.Errorf("the server sent a masked frame")
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("a %d-byte frame", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return nil, err
		}
		switch opcode {
		case 0x8:
			return nil, fmt.Errorf("the server closed the websocket: %q", payload)
		case 0x9, 0xa:
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}

// keyPost posts a JSON body to u with the API key.
func keyPost(t *testing.T, u, key, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Key "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
