package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend accepts connections and answers each request read from them
// with answer(request), written as is; close reports whether to close the
// connection after it. It counts the connections it accepted and those it
// closed.
func rawBackend(t *testing.T, answer func(r *http.Request) (raw string, close bool)) (Target, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var conns, closed atomic.Int64
	tgt := connBackend(t, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		defer closed.Add(1)
		defer c.Close() // before it counts as closed
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			raw, closeAfter := answer(req)
			if _, err := io.WriteString(c, raw); err != nil || closeAfter {
				return
			}
		}
	})
	return tgt, &conns, &closed
}

// TestDirectKeepsConnections: sequential requests reuse one connection to
// the target; a target answering Connection: close gets a new one each time.
func TestDirectKeepsConnections(t *testing.T) {
	for _, tc := range []struct {
		name      string
		close     bool
		wantConns int64
	}{
		{"keep-alive", false, 1},
		{"connection close", true, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt, conns, _ := rawBackend(t, func(*http.Request) (string, bool) {
				if tc.close {
					return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true
				}
				return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
			})
			s := serve(t, Config{Prefix: "/app/", Balancer: fixed(tgt)})
			for i := range 10 {
				res, body := get(t, s.URL+"/app/", nil)
				if res.StatusCode != 200 || body != "ok" {
					t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
				}
			}
			if n := conns.Load(); n != tc.wantConns {
				t.Errorf("target accepted %d connections, want %d", n, tc.wantConns)
			}
		})
	}
}

// TestDirectTargetClosedIdle: a target that closes each connection after
// its answer without saying so, before the next request (as servers with a
// short keep-alive timeout do), still answers every request, idempotent or not: a GET is sent again
// on a new connection, a POST only goes on a connection that is still open.
func TestDirectTargetClosedIdle(t *testing.T) {
	var posts atomic.Int64
	tgt, _, closed := rawBackend(t, func(r *http.Request) (string, bool) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	s := serve(t, Config{Prefix: "/app/", Balancer: fixed(tgt)})
	for i := range 6 {
		// The kept connection is closed by the time the next request
		// comes, as after a keep-alive timeout.
		waitFor(t, "the target closing its connections", func() bool { return closed.Load() >= int64(i) })
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodPost
		}
		req, err := http.NewRequestWithContext(t.Context(), method, s.URL+"/app/", nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("%s %d: %d %q", method, i, res.StatusCode, b)
		}
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("target ran %d POSTs, want 3 (none twice)", n)
	}
}

// TestDirectResponseFraming: responses of every framing pass through whole,
// and the connection stays usable after those that allow it.
func TestDirectResponseFraming(t *testing.T) {
	for _, tc := range []struct {
		name, method, raw string
		close             bool
		wantStatus        int
		wantBody          string
		wantHeader        map[string]string // also trailers, as the client sees them
	}{
		{"content length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: a\r\n\r\nhello", false, 200, "hello", map[string]string{"X-App": "a"}},
		{"chunked with trailer", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n", false, 200, "abcde", map[string]string{"X-Sum": "5"}},
		{"until close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed to the end", true, 200, "streamed to the end", nil},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\n\r\nold", true, 200, "old", nil},
		{"head", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false, 200, "", map[string]string{"Content-Length": "100"}},
		{"no content", "GET", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", nil},
		{"not modified", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", false, 304, "", map[string]string{"Etag": `"x"`}},
		{"early hints", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", nil},
		{"hop-by-hop dropped", "GET", "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", map[string]string{"X-Secret": "", "Keep-Alive": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt, _, _ := rawBackend(t, func(*http.Request) (string, bool) { return tc.raw, tc.close })
			s := serve(t, Config{Prefix: "/app/", Balancer: fixed(tgt)})
			for i := range 2 { // the second one runs on the kept connection, if any
				req, err := http.NewRequestWithContext(t.Context(), tc.method, s.URL+"/app/", nil)
				if err != nil {
					t.Fatal(err)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != tc.wantStatus || string(b) != tc.wantBody {
					t.Fatalf("request %d: %d %q, want %d %q", i, res.StatusCode, b, tc.wantStatus, tc.wantBody)
				}
				for k, want := range tc.wantHeader {
					got := res.Header.Get(k)
					if got == "" {
						got = res.Trailer.Get(k)
					}
					if got != want {
						t.Errorf("request %d: %s = %q, want %q", i, k, got, want)
					}
				}
			}
		})
	}
}

// TestDirectClientGone: a client that gives up while the target is still
// working ends the proxy's wait, and the target sees its connection close.
func TestDirectClientGone(t *testing.T) {
	app := startSlowApp(t)
	s := serve(t, Config{Prefix: "/app/", Balancer: fixed(target(t, "slow", app.url))})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/app/", nil)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	app.waitEntered(t, "")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client got %v, want its cancellation", err)
	}
	app.waitGone(t, "")
}

// slowApp answers nothing until its client goes away, and tells when a
// request came in and when the request's connection closed.
type slowApp struct {
	url           string
	entered, gone chan struct{}
}

func startSlowApp(t *testing.T) *slowApp {
	t.Helper()
	a := &slowApp{entered: make(chan struct{}), gone: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(a.entered)
		select {
		case <-r.Context().Done():
			close(a.gone)
		case <-time.After(30 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

func (a *slowApp) waitEntered(t *testing.T, who string) {
	t.Helper()
	select {
	case <-a.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("%sthe request never reached the app", who)
	}
}

func (a *slowApp) waitGone(t *testing.T, who string) {
	t.Helper()
	select {
	case <-a.gone:
	case <-time.After(10 * time.Second):
		t.Fatalf("%sthe app's connection stayed open after the client left", who)
	}
}

// TestDirectStreamsBody: a response without a length reaches the client
// while the target is still writing it, through the pooled transport.
func TestDirectStreamsBody(t *testing.T) {
	release := make(chan struct{})
	backendSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	t.Cleanup(backendSrv.Close)
	s := serve(t, Config{Prefix: "/app/", Balancer: fixed(target(t, "stream", backendSrv.URL))})
	res, err := http.Get(s.URL + "/app/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || strings.TrimSpace(string(rest)) != "second" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}
