//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/atrium-suite/atrium/shared/testutil"
)

// backend answers with what the proxy sent it: the path and the headers
// a proxy sets, and its own name, so a test sees both ends.
func backend(t *testing.T, name string, conns *atomic.Int32) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.Write([]byte("part"))
			w.(http.Flusher).Flush() // no Content-Length: chunked
			return
		}
		fmt.Fprintf(w, "%s %s xff=%s host=%s xfh=%s xfp=%s conn=%q", name, r.URL.RequestURI(),
			r.Header.Get("X-Forwarded-For"), r.Host, r.Header.Get("X-Forwarded-Host"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Extra"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew && conns != nil {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func start(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p.Addr()
}

// exchange writes raw to a new connection and reads n responses, each as
// "STATUS BODY".
func exchange(t *testing.T, addr, raw string, n int) []string {
	t.Helper()
	var out []string
	for _, resp := range testutil.Exchange(t, addr, raw, make([]*http.Request, n)...) {
		body, _ := io.ReadAll(resp.Body)
		out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, body))
	}
	return out
}

func TestProxies(t *testing.T) {
	addr := start(t, Config{Backends: []string{backend(t, "a", nil)}, Strip: "/content/g/", Loops: 2})
	for _, tc := range []struct {
		name, raw string
		want      []string
	}{
		{"prefix stripped, forwarding headers replaced",
			"GET /content/g/x?q=1 HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nConnection: keep-alive\r\n\r\n",
			[]string{`200 a /x?q=1 xff=127.0.0.1 host=h.example xfh=h.example xfp=http conn=""`}},
		{"other headers kept, another path as it is",
			"GET /other HTTP/1.1\r\nHost: h\r\nX-Extra: yes\r\n\r\n",
			[]string{`200 a /other xff=127.0.0.1 host=h xfh=h xfp=http conn="yes"`}},
		{"pipelined requests answered in order",
			"GET /content/g/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /content/g/2 HTTP/1.1\r\nHost: h\r\n\r\n",
			[]string{`200 a /1 xff=127.0.0.1 host=h xfh=h xfp=http conn=""`, `200 a /2 xff=127.0.0.1 host=h xfh=h xfp=http conn=""`}},
		{"a chunked answer is not handled: 502",
			"GET /chunked HTTP/1.1\r\nHost: h\r\n\r\n", []string{"502 "}},
		{"a request body is not handled: 501",
			"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", []string{"501 "}},
		{"not HTTP/1: 501",
			"GET /x SPDY/3\r\nHost: h\r\n\r\n", []string{"501 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := exchange(t, addr, tc.raw, len(tc.want))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestKeepsConnectionsAndBalances(t *testing.T) {
	var conns atomic.Int32
	addr := start(t, Config{Backends: []string{backend(t, "a", &conns), backend(t, "b", &conns)}, Loops: 1})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	seen := map[string]int{}
	for range 20 {
		resp, err := client.Get("http://" + addr + "/p")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen[string(body[:1])]++
	}
	if seen["a"] != 10 || seen["b"] != 10 {
		t.Errorf("answers per backend %v, want 10 each (round robin)", seen)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d backend connections for 20 sequential requests, want 2 (one per backend, kept alive)", n)
	}
}

func TestConnectionClose(t *testing.T) {
	addr := start(t, Config{Backends: []string{backend(t, "a", nil)}, Loops: 1})
	c := testutil.Dial(t, addr, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
	all, err := io.ReadAll(c) // ends only if the proxy closes
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(all), "HTTP/1.1 200") {
		t.Errorf("got %q", all)
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Listen: "127.0.0.1:0", Loops: 1},
		{Listen: "127.0.0.1:0", Backends: []string{"127.0.0.1:1"}, Loops: 0},
		{Listen: "127.0.0.1:0", Backends: []string{"localhost:1"}, Loops: 1},
		{Listen: "[::1]:0", Backends: []string{"127.0.0.1:1"}, Loops: 1},
		{Listen: "127.0.0.1:0", Backends: []string{"127.0.0.1:1"}, Strip: "/content", Loops: 1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
}
