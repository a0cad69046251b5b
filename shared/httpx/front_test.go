package httpx_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/h1"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/testutil"
)

// fastServer is a Server with a fast route at /fast/ and the same paths on
// the engine, so each answer says which side served it.
type fastServer struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
	fast   atomic.Int64 // requests the fast handler served
	// block, when set, makes /fast/block wait until it is closed.
	block   chan struct{}
	started chan struct{}
}

func startFast(t *testing.T, opts ...func(*httpx.Config)) *fastServer {
	t.Helper()
	cfg := httpx.Config{Name: "test", Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := httpx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	fs := &fastServer{addr: s.Addr().String(), done: make(chan error, 1), block: make(chan struct{}), started: make(chan struct{}, 1)}
	file := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(file, bytes.Repeat([]byte("0123456789abcdef"), 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Engine().Any("/fast/*path", func(c *gin.Context) {
		if strings.HasSuffix(c.Request.URL.Path, "/decline/file") {
			c.File(file) // net/http sends it with sendfile through ReadFrom
			return
		}
		c.Header("X-Side", "engine")
		c.String(http.StatusOK, "engine %s %s", c.Request.Method, c.Request.URL.Path)
	})
	s.HandleFast("/fast/", "/fast/*path", func(w http.ResponseWriter, r *h1.Request) bool {
		switch {
		case strings.Contains(r.Path, "decline"):
			return false
		case strings.HasSuffix(r.Path, "/panic"):
			panic("fast handler panics")
		case strings.HasSuffix(r.Path, "/rawpanic"):
			// As the proxy: it takes the connection's writer, starts a
			// response of its own, and fails midway.
			bw := w.(interface{ RawConn() *bufio.Writer }).RawConn()
			bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			bw.Flush()
			panic("fast handler panics mid-response")
		case strings.HasSuffix(r.Path, "/block"):
			fs.started <- struct{}{}
			<-fs.block
		case strings.HasSuffix(r.Path, "/stream"):
			// No Content-Length: the response is chunked, with a trailer.
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			w.Header().Set("X-Sum", "2 parts")
			fs.fast.Add(1)
			return true
		case strings.HasSuffix(r.Path, "/empty"):
			fs.fast.Add(1)
			return true // wrote nothing: a 200 with no body
		}
		fs.fast.Add(1)
		body := "fast " + r.Method + " " + r.Path
		w.Header().Set("X-Side", "fast")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body)
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	fs.cancel = cancel
	go func() { fs.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-fs.block:
		default:
			close(fs.block)
		}
		<-fs.done
	})
	return fs
}

func body(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func get(method string) *http.Request { return &http.Request{Method: method} }

func TestFastPathTakesAndLeaves(t *testing.T) {
	fs := startFast(t)
	big := strings.Repeat("x", 20<<10) // beyond the fast path's head buffer
	for _, tc := range []struct {
		name, raw string
		want      []string // each response's body
	}{
		{"plain GET", "GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n", []string{"fast GET /fast/a"}},
		{"declined by the handler", "GET /fast/decline HTTP/1.1\r\nHost: x\r\n\r\n", []string{"engine GET /fast/decline"}},
		{"outside the prefix", "GET /fastx HTTP/1.1\r\nHost: x\r\n\r\n", []string{""}},
		{"a body goes to net/http", "POST /fast/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", []string{"engine POST /fast/a"}},
		{"an upgrade goes to net/http", "GET /fast/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", []string{"engine GET /fast/a"}},
		{"a file from net/http after a handoff", "GET /fast/decline/file HTTP/1.1\r\nHost: x\r\n\r\n", []string{strings.Repeat("0123456789abcdef", 64<<10)}},
		{"HTTP/1.0 goes to net/http", "GET /fast/a HTTP/1.0\r\nHost: x\r\n\r\n", []string{"engine GET /fast/a"}},
		{"a head larger than the buffer", "GET /fast/a HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", []string{"engine GET /fast/a"}},
		{"pipelined fast requests", "GET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /fast/2 HTTP/1.1\r\nHost: x\r\n\r\n", []string{"fast GET /fast/1", "fast GET /fast/2"}},
		{"fast, then the rest of the connection to net/http",
			"GET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /fast/decline HTTP/1.1\r\nHost: x\r\n\r\nGET /fast/3 HTTP/1.1\r\nHost: x\r\n\r\n",
			[]string{"fast GET /fast/1", "engine GET /fast/decline", "engine GET /fast/3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs := make([]*http.Request, len(tc.want))
			for i := range reqs {
				reqs[i] = get(http.MethodGet)
			}
			resps := testutil.Exchange(t, fs.addr, tc.raw, reqs...)
			for i, resp := range resps {
				if tc.want[i] == "" {
					if resp.StatusCode != http.StatusNotFound {
						t.Errorf("response %d: %s, want 404 from the engine", i+1, resp.Status)
					}
					continue
				}
				if got := body(resp); got != tc.want[i] {
					t.Errorf("response %d: body %q, want %q", i+1, got, tc.want[i])
				}
				if resp.Header.Get(httpx.RequestIDHeader) == "" {
					t.Errorf("response %d has no %s", i+1, httpx.RequestIDHeader)
				}
			}
		})
	}
}

func TestFastPathResponses(t *testing.T) {
	fs := startFast(t)
	t.Run("HEAD keeps the length, sends no body", func(t *testing.T) {
		resp := testutil.Exchange(t, fs.addr, "HEAD /fast/a HTTP/1.1\r\nHost: x\r\n\r\nGET /fast/b HTTP/1.1\r\nHost: x\r\n\r\n", get(http.MethodHead), get(http.MethodGet))
		if resp[0].ContentLength != int64(len("fast HEAD /fast/a")) || body(resp[0]) != "" {
			t.Errorf("HEAD: length %d", resp[0].ContentLength)
		}
		if got := body(resp[1]); got != "fast GET /fast/b" {
			t.Errorf("the request after HEAD got %q: the HEAD response carried a body", got)
		}
	})
	t.Run("chunked with a trailer", func(t *testing.T) {
		resp := testutil.Exchange(t, fs.addr, "GET /fast/stream HTTP/1.1\r\nHost: x\r\n\r\n", get(http.MethodGet))[0]
		if got := body(resp); got != "part one, part two" || len(resp.TransferEncoding) == 0 {
			t.Errorf("body %q, transfer encoding %v", got, resp.TransferEncoding)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "2 parts" {
			t.Errorf("trailer X-Sum = %q", got)
		}
	})
	t.Run("nothing written is a 200 with no body", func(t *testing.T) {
		resp := testutil.Exchange(t, fs.addr, "GET /fast/empty HTTP/1.1\r\nHost: x\r\n\r\n", get(http.MethodGet))[0]
		if resp.StatusCode != 200 || resp.ContentLength != 0 {
			t.Errorf("%s, length %d", resp.Status, resp.ContentLength)
		}
		if resp.Header.Get("Date") == "" {
			t.Error("no Date header")
		}
	})
	t.Run("Connection: close is honoured", func(t *testing.T) {
		c := testutil.Dial(t, fs.addr, "GET /fast/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		all, err := io.ReadAll(c) // returns only if the server closes
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(all), "Connection: close\r\n") || !strings.HasSuffix(string(all), "fast GET /fast/a") {
			t.Errorf("response:\n%s", all)
		}
	})
	t.Run("a panic is a 500 and the connection ends", func(t *testing.T) {
		c := testutil.Dial(t, fs.addr, "GET /fast/panic HTTP/1.1\r\nHost: x\r\n\r\n")
		all, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(all), "HTTP/1.1 500 ") {
			t.Errorf("response:\n%s", all)
		}
	})
	t.Run("a panic mid-response appends nothing", func(t *testing.T) {
		c := testutil.Dial(t, fs.addr, "GET /fast/rawpanic HTTP/1.1\r\nHost: x\r\n\r\n")
		all, _ := io.ReadAll(c) // returns once the server closes
		if got := string(all); !strings.HasSuffix(got, "partial") || strings.Count(got, "HTTP/1.1") != 1 {
			t.Errorf("response:\n%s", all)
		}
	})
	t.Run("malformed requests get net/http's answer", func(t *testing.T) {
		for _, raw := range []string{
			"GET /fast/a HTTP/1.1\r\n\r\n",                           // no Host
			"GET /fast/a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",     // two
			"GET /fast/a HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", // space in a name
		} {
			resp := testutil.Exchange(t, fs.addr, raw, get(http.MethodGet))[0]
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%q: %s, want 400", raw, resp.Status)
			}
		}
	})
	if fs.fast.Load() == 0 {
		t.Error("the fast handler served nothing")
	}
}

func TestFastPathClientsAndMetrics(t *testing.T) {
	fs := startFast(t)
	// A real client over kept-alive connections.
	for i := range 20 {
		resp, err := http.Get(fmt.Sprintf("http://%s/fast/n%d", fs.addr, i))
		if err != nil {
			t.Fatal(err)
		}
		if got := body(resp); got != fmt.Sprintf("fast GET /fast/n%d", i) {
			t.Errorf("request %d: %q", i, got)
		}
		resp.Body.Close()
	}
	if n := fs.fast.Load(); n != 20 {
		t.Errorf("the fast handler served %d of 20 requests", n)
	}
	resp, err := http.Get("http://" + fs.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := body(resp)
	resp.Body.Close()
	if want := `atrium_http_requests_total{code="200",method="GET",route="/fast/*path",server="test"} 20`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}
}

func TestFastPathShutdown(t *testing.T) {
	fs := startFast(t)
	// An idle kept-alive connection and a request in flight.
	idle, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
	ibr := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(ibr, get(http.MethodGet)); err != nil {
		t.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	busy, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /fast/block HTTP/1.1\r\nHost: x\r\n\r\n")
	<-fs.started

	fs.cancel()
	// The idle connection is closed at once.
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := ibr.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	// Serve waits for the request in flight.
	select {
	case err := <-fs.done:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	default:
	}
	close(fs.block)
	_ = busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(busy), get(http.MethodGet))
	if err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	if got := body(resp); got != "fast GET /fast/block" || !resp.Close {
		t.Errorf("in-flight request: %q, close %v", got, resp.Close)
	}
	if err := <-fs.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	fs.done <- nil // for the cleanup
}

// TestFastPathTimeouts: a kept-alive connection on the fast path is closed
// once idle for the idle timeout (the front moves that deadline only every
// eighth of it, so not before 7/8 of it), not while requests keep coming,
// and a head that stops coming is cut at the header timeout; a head that
// came slowly puts the idle timeout back for the time after its response.
func TestFastPathTimeouts(t *testing.T) {
	const idle, header = 1600 * time.Millisecond, 300 * time.Millisecond
	fs := startFast(t, func(c *httpx.Config) { c.IdleTimeout, c.ReadHeaderTimeout = idle, header })
	c, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	roundTrip := func(parts ...string) {
		t.Helper()
		for i, part := range parts {
			if i > 0 {
				<-time.After(header / 3) // the scenario: a head sent in pieces
			}
			if _, err := io.WriteString(c, part); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.ReadResponse(br, get(http.MethodGet))
		if err != nil {
			t.Fatalf("request after %d: %v", fs.fast.Load(), err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Requests every quarter of the idle timeout, for longer than it.
	start := time.Now()
	for time.Since(start) < idle*5/4 {
		roundTrip("GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
		<-time.After(idle / 4)
	}
	// Right after a request (within the eighth of the idle timeout in
	// which the front does not move the deadline), a head in two pieces,
	// then nothing: closed after the idle timeout, not at the header
	// timeout the slow head had set.
	roundTrip("GET /fast/a HTTP/1.1\r\nHost: x\r\n\r\n")
	roundTrip("GET /fast/a HTTP/1.1\r\n", "Host: x\r\n\r\n")
	answered := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if waited := time.Since(answered); waited < idle*7/8 {
		t.Errorf("idle connection closed after %v, want at least %v (7/8 of the idle timeout)", waited, idle*7/8)
	}

	// A head that stops midway: closed at the header timeout.
	c2, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	sent := time.Now()
	io.WriteString(c2, "GET /fast/a HTTP/1.1\r\nHost:")
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("half a head: %v, want EOF", err)
	}
	if waited := time.Since(sent); waited < header || waited >= idle*7/8 {
		t.Errorf("half a head: closed after %v, want the header timeout (%v)", waited, header)
	}
}

// TestFastPathUnused checks a server without fast routes still serves
// everything through net/http (no front in between).
func TestFastPathUnused(t *testing.T) {
	url := start(t, httpx.Config{}, func(e *gin.Engine) {
		e.GET("/x", func(c *gin.Context) { c.String(200, "ok") })
	})
	resp, b := do(t, http.MethodGet, url+"/x", "", nil)
	if resp.StatusCode != 200 || b != "ok" {
		t.Errorf("%s %q", resp.Status, b)
	}
}
