package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/atrium-suite/atrium/shared/h1"
)

// helloBackend is the benchmarks' app: a fixed short body, keep-alive.
func helloBackend(b *testing.B) Target {
	b.Helper()
	body := []byte("Hello, world!\n")
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
		_, _ = w.Write(body)
	}))
	b.Cleanup(s.Close)
	return target(b, "hello", s.URL)
}

// wrapped is a Balancer around a StickyBalancer, as Connect's process
// pool is: the proxy takes its general path (release closure, cookie
// through AffinityCookie).
type wrapped struct{ *StickyBalancer }

func (w wrapped) Pick(r *http.Request) (Target, func(), error) {
	t, release, err := w.StickyBalancer.Pick(r)
	if err != nil {
		return t, nil, err
	}
	return t, func() { release() }, nil
}

// stickyProxy is the proxy as Connect builds it for one app process; wrap
// puts the balancer behind another type.
func stickyProxy(b *testing.B, tgt Target, wrap bool) *Proxy {
	b.Helper()
	bal, err := NewSticky(StickyConfig{Prefix: "/content/abc/"})
	if err != nil {
		b.Fatal(err)
	}
	if err := bal.Set([]Target{tgt}); err != nil {
		b.Fatal(err)
	}
	var balancer Balancer = bal
	if wrap {
		balancer = wrapped{bal}
	}
	p, err := New(Config{Prefix: "/content/abc/", Balancer: balancer})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// discardWriter is a ResponseWriter that keeps nothing, so
// BenchmarkProxyServeHTTP counts the proxy's allocations, not a recorder's.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkProxyServeHTTP is one request through the handler to a real
// backend over loopback: the proxy's own cost per request (allocations
// included) without a client-side HTTP server in the measurement.
func BenchmarkProxyServeHTTP(b *testing.B) {
	for _, tc := range []struct {
		name         string
		cookie, wrap bool
	}{
		{"first visit", false, false},
		{"with affinity cookie", true, false},
		{"wrapped balancer, first visit", false, true},
		{"wrapped balancer, with affinity cookie", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := stickyProxy(b, helloBackend(b), tc.wrap)
			req := httptest.NewRequest(http.MethodGet, "http://example.test/content/abc/api/items?page=2", nil)
			req.RemoteAddr = "127.0.0.1:50000"
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			if tc.cookie {
				w := &discardWriter{h: http.Header{}}
				p.ServeHTTP(w, req)
				c := (&http.Response{Header: w.h}).Cookies()
				if len(c) != 1 {
					b.Fatalf("first response set %d cookies, want 1", len(c))
				}
				req.Header.Set("Cookie", "theme=dark; "+c[0].Name+"="+c[0].Value)
			}
			w := &discardWriter{h: make(http.Header, 4)}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				p.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// BenchmarkProxyParallel is many keep-alive clients through a real HTTP
// server in front of the proxy, as wrk drives it in scripts/bench/connect.sh.
func BenchmarkProxyParallel(b *testing.B) {
	p := stickyProxy(b, helloBackend(b), false)
	front := httptest.NewServer(p)
	b.Cleanup(front.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	b.Cleanup(client.CloseIdleConnections)
	url := front.URL + "/content/abc/"
	var once sync.Once
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := client.Get(url)
			if err != nil {
				once.Do(func() { b.Error(err) })
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				once.Do(func() { b.Errorf("status %d", res.StatusCode) })
				return
			}
		}
	})
}

// BenchmarkServeFast is one request through shared/httpx's fast path and
// ServeFast to an app over loopback, with a client and an app that
// allocate nothing themselves: the allocations reported are the server's
// and the proxy's per request.
func BenchmarkServeFast(b *testing.B) {
	const answer = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n"
	tgt := connBackend(b, func(c net.Conn, br *bufio.Reader) {
		for {
			for {
				buf, err := br.Peek(br.Buffered())
				if n := h1.HeadLength(buf); n > 0 {
					br.Discard(n)
					break
				}
				if err != nil {
					return
				}
				if _, err := br.Peek(br.Buffered() + 1); err != nil {
					return
				}
			}
			if _, err := io.WriteString(c, answer); err != nil {
				return
			}
		}
	})
	bal, err := NewSticky(StickyConfig{Prefix: "/content/abc/"})
	if err != nil {
		b.Fatal(err)
	}
	if err := bal.Set([]Target{tgt}); err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{Prefix: "/content/abc/", Balancer: bal})
	if err != nil {
		b.Fatal(err)
	}
	f := startFront(b, p, nil, true)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /content/abc/x HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		// Read to the end of the body: the head, then 14 bytes.
		n := 0
		for {
			m, err := c.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += m
			if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 && n >= i+4+14 {
				break
			}
		}
	}
}
