package proxy

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// seen is what a backend reports about the request it got.
type seen struct {
	ID      string
	Path    string
	RawPath string
	Query   string
	Host    string
	Header  http.Header
}

// backend answers every request with what it saw, as JSON.
func backend(t *testing.T, id string) (*httptest.Server, Target) {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{id, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header})
	}))
	t.Cleanup(s.Close)
	return s, target(t, id, s.URL)
}

func target(t testing.TB, id, raw string) Target {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return Target{URL: u, ID: id}
}

// fixed always picks one target.
type fixed Target

func (f fixed) Pick(*http.Request) (Target, func(), error) { return Target(f), nil, nil }

// serve puts a proxy for cfg behind a real HTTP server.
func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, rawURL string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func decode(t *testing.T, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("backend answer %q: %v", body, err)
	}
	return s
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no balancer", Config{Prefix: "/content/x/"}},
		{"relative prefix", Config{Prefix: "content/x/", Balancer: fixed{}}},
		{"query in prefix", Config{Prefix: "/content/x/?a", Balancer: fixed{}}},
		{"double slash", Config{Prefix: "//evil/", Balancer: fixed{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

func TestPrefixAndHeaders(t *testing.T) {
	_, tgt := backend(t, "a")
	for _, tc := range []struct {
		name              string
		strip             bool
		path              string
		wantPath, wantRaw string
		wantQuery         string
	}{
		{"kept", false, "/content/abc/x/y?q=1", "/content/abc/x/y", "", "q=1"},
		{"stripped", true, "/content/abc/x/y?q=1", "/x/y", "", "q=1"},
		{"stripped root", true, "/content/abc/", "/", "", ""},
		{"kept root", false, "/content/abc/", "/content/abc/", "", ""},
		{"stripped keeps escapes", true, "/content/abc/api/contents/a%2Fb", "/api/contents/a/b", "/api/contents/a%2Fb", ""},
		{"kept keeps escapes", false, "/content/abc/files/a%2Fb", "/content/abc/files/a/b", "/content/abc/files/a%2Fb", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, Config{
				Prefix: "/content/abc/", StripPrefix: tc.strip, Balancer: fixed(tgt),
				Headers: func(r *http.Request, h http.Header) { h.Set("X-Injected", "for "+r.URL.EscapedPath()) },
			})
			res, body := get(t, s.URL+tc.path, http.Header{
				"Connection":          {"X-Hop"},
				"X-Hop":               {"secret"},
				"Proxy-Authorization": {"Basic Zm9vOmJhcg=="},
				"X-Forwarded-For":     {"203.0.113.9"},
				"Cookie":              {"atrium_connect_session=s3cret; app=1", "atrium_sticky_x=y; theme=dark"},
			})
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			got := decode(t, body)
			if got.Path != tc.wantPath || got.RawPath != tc.wantRaw || got.Query != tc.wantQuery {
				t.Errorf("backend saw path %q raw %q query %q, want %q %q %q", got.Path, got.RawPath, got.Query, tc.wantPath, tc.wantRaw, tc.wantQuery)
			}
			host := strings.TrimPrefix(s.URL, "http://")
			for k, want := range map[string]string{
				"X-Forwarded-Prefix":  "/content/abc",
				"X-Forwarded-Host":    host,
				"X-Forwarded-Proto":   "http",
				"X-Forwarded-For":     "127.0.0.1", // the client's claim is not trusted
				"X-Injected":          "for " + strings.SplitN(tc.path, "?", 2)[0],
				"Cookie":              "app=1; theme=dark",
				"X-Hop":               "",
				"Proxy-Authorization": "",
			} {
				if v := strings.Join(got.Header[k], ","); v != want {
					t.Errorf("backend saw %s %q, want %q", k, v, want)
				}
			}
			if got.Host != host {
				t.Errorf("backend saw Host %q, want the client's %q", got.Host, host)
			}
		})
	}
}

func TestTrustForwarded(t *testing.T) {
	_, tgt := backend(t, "a")
	for _, tc := range []struct {
		name               string
		trust              bool
		wantFor, wantProto string
	}{
		{"untrusted", false, "127.0.0.1", "http"},
		{"trusted", true, "203.0.113.9, 127.0.0.1", "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, Config{Prefix: "/s/1/", Balancer: fixed(tgt), TrustForwarded: tc.trust})
			_, body := get(t, s.URL+"/s/1/", http.Header{"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"https"}})
			got := decode(t, body)
			if v := got.Header.Get("X-Forwarded-For"); v != tc.wantFor {
				t.Errorf("X-Forwarded-For %q, want %q", v, tc.wantFor)
			}
			if v := got.Header.Get("X-Forwarded-Proto"); v != tc.wantProto {
				t.Errorf("X-Forwarded-Proto %q, want %q", v, tc.wantProto)
			}
		})
	}
}

func TestOutsidePrefix(t *testing.T) {
	_, tgt := backend(t, "a")
	s := serve(t, Config{Prefix: "/content/abc", Balancer: fixed(tgt)})
	for _, tc := range []struct {
		name, path string
		status     int
		location   string
	}{
		{"bare prefix redirects", "/content/abc?x=1", http.StatusMovedPermanently, "/content/abc/?x=1"},
		{"other content", "/content/abcd/", http.StatusNotFound, ""},
		{"root", "/", http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := get(t, s.URL+tc.path, nil)
			if res.StatusCode != tc.status || res.Header.Get("Location") != tc.location {
				t.Errorf("got %d %q, want %d %q", res.StatusCode, res.Header.Get("Location"), tc.status, tc.location)
			}
		})
	}
}

func TestBackendDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := target(t, "gone", "http://"+l.Addr().String())
	l.Close()
	empty, err := NewSticky(StickyConfig{Prefix: "/content/abc/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		bal      Balancer
		accept   string
		status   int
		ctype    string
		contains string
	}{
		{"text", fixed(down), "text/html", http.StatusBadGateway, "text/plain; charset=utf-8", "not responding"},
		{"json", fixed(down), "application/json", http.StatusBadGateway, "application/json", `"error":"The application is not responding`},
		{"nothing running", empty, "", http.StatusServiceUnavailable, "text/plain; charset=utf-8", "not running yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, Config{Prefix: "/content/abc/", Balancer: tc.bal})
			res, body := get(t, s.URL+"/content/abc/", http.Header{"Accept": {tc.accept}})
			if res.StatusCode != tc.status || res.Header.Get("Content-Type") != tc.ctype || !strings.Contains(body, tc.contains) {
				t.Errorf("got %d %q %q, want %d %q containing %q", res.StatusCode, res.Header.Get("Content-Type"), body, tc.status, tc.ctype, tc.contains)
			}
		})
	}
}

// echoBackend completes any Upgrade request itself and echoes the bytes
// that follow, as a websocket server would after its handshake.
func echoBackend(t *testing.T) (Target, <-chan http.Header) {
	headers := make(chan http.Header, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		headers <- r.Header.Clone()
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Path: %s\r\n\r\n", r.URL.Path)
		brw.Flush()
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if err != nil {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return target(t, "ws", s.URL), headers
}

func TestWebSocketUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name     string
		strip    bool
		wantPath string
	}{
		{"jupyter keeps prefix", false, "/s/1/api/kernels/k/channels"},
		{"code-server strips it", true, "/api/kernels/k/channels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt, headers := echoBackend(t)
			bal, err := NewSticky(StickyConfig{Prefix: "/s/1/", LeastLoaded: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := bal.Set([]Target{tgt}); err != nil {
				t.Fatal(err)
			}
			s := serve(t, Config{Prefix: "/s/1/", StripPrefix: tc.strip, Balancer: bal})

			conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "http://"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/s/1/api/kernels/k/channels", nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "echo")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			if err := req.Write(conn); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", res.StatusCode)
			}
			if p := res.Header.Get("X-Path"); p != tc.wantPath {
				t.Errorf("backend path %q, want %q", p, tc.wantPath)
			}
			if c := res.Header.Get("Set-Cookie"); !strings.HasPrefix(c, bal.CookieName()+"=") {
				t.Errorf("upgrade response without the affinity cookie: %q", c)
			}
			h := <-headers
			if h.Get("Sec-Websocket-Key") != "dGhlIHNhbXBsZSBub25jZQ==" {
				t.Errorf("Sec-WebSocket-Key not forwarded: %v", h)
			}
			// Several round trips over the one connection: it stays open.
			for i := range 3 {
				msg := fmt.Sprintf("message %d", i)
				if _, err := conn.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(br, got); err != nil {
					t.Fatal(err)
				}
				if string(got) != msg {
					t.Fatalf("echo %q, want %q", got, msg)
				}
			}
			if n := bal.InFlight()["ws"]; n != 1 {
				t.Errorf("open websocket counts %d in flight, want 1", n)
			}
			conn.Close()
			waitFor(t, "release after close", func() bool { return bal.InFlight()["ws"] == 0 })
		})
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestStreamingResponses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ctype string
		flush time.Duration
	}{
		{"server-sent events", "text/event-stream", 0},
		{"chunked with FlushInterval -1", "application/x-ndjson", -1},
		{"chunked, default interval", "application/x-ndjson", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				fmt.Fprint(w, "data: one\n\n")
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				fmt.Fprint(w, "data: two\n\n")
			}))
			defer s.Close()
			defer close(release)
			p := serve(t, Config{Prefix: "/content/abc/", Balancer: fixed(target(t, "a", s.URL)), FlushInterval: tc.flush})

			res, err := http.Get(p.URL + "/content/abc/events")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got := make(chan string)
			go func() {
				line, _ := bufio.NewReader(res.Body).ReadString('\n')
				got <- line
			}()
			select {
			case line := <-got:
				if line != "data: one\n" {
					t.Fatalf("first line %q", line)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("first event did not arrive while the backend was still writing")
			}
		})
	}
}

func TestLargeUploadIsStreamed(t *testing.T) {
	const size = 50 << 20
	firstByte := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		var once sync.Once
		buf := make([]byte, 64<<10)
		total := 0
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				once.Do(func() { close(firstByte) })
				h.Write(buf[:n])
				total += n
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		fmt.Fprintf(w, "%d %x", total, h.Sum(nil))
	}))
	defer s.Close()
	p := serve(t, Config{Prefix: "/content/abc/", Balancer: fixed(target(t, "a", s.URL))})

	// The client sends the first megabyte, then waits until the backend has
	// read from it before sending the rest: a proxy that buffered the body
	// would never let that happen.
	pr, pw := io.Pipe()
	wantSum := make(chan string, 1)
	go func() {
		want := sha256.New()
		// Sent on every return, so a failed send ends in a mismatch, not a hang.
		defer func() { wantSum <- hex.EncodeToString(want.Sum(nil)) }()
		chunk := make([]byte, 1<<20)
		for i := 0; i < size; i += len(chunk) {
			for j := range chunk {
				chunk[j] = byte((i + j) % 251)
			}
			want.Write(chunk)
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			if i == 0 {
				select {
				case <-firstByte:
				case <-time.After(10 * time.Second):
					pw.CloseWithError(fmt.Errorf("the backend saw nothing of the body while it was being sent"))
					return
				}
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL+"/content/abc/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if wantBody := fmt.Sprintf("%d %s", size, <-wantSum); string(body) != wantBody {
		t.Fatalf("backend got %q, want %q (status %d)", body, wantBody, res.StatusCode)
	}
}
