package testutil

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Dial opens a connection to addr and writes raw to it: request bytes as
// they go on the wire, which net/http's client would not send as they are
// (pipelined requests, lower-case names, odd framing, half a head). The
// connection has a 10 s deadline and is closed when the test ends.
func Dial(t testing.TB, addr, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return c
}

// Exchange writes raw on a new connection (Dial) and reads one response
// for each of reqs (the request each answers, for its method; nil is a
// GET), each body read in full so the next response can be read.
func Exchange(t testing.TB, addr, raw string, reqs ...*http.Request) []*http.Response {
	t.Helper()
	br := bufio.NewReader(Dial(t, addr, raw))
	var out []*http.Response
	for _, req := range reqs {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("reading response %d to %q: %v", len(out)+1, raw, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading body %d to %q: %v", len(out)+1, raw, err)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
	return out
}
