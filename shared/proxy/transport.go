package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"
)

// directTransport is the proxy's default RoundTripper. Requests without a
// body and without an upgrade — page loads, assets, API reads, nearly all
// of an app's traffic — go over a pool of kept-alive connections with no
// goroutine of their own: the request is written and the response read on
// the handler's goroutine. http.Transport runs two goroutines per
// connection and hands every request and response between them over
// channels, which was a fifth of the proxy's CPU time under load.
// Everything else (request bodies, which may need a response read while
// the body is still being sent, and websocket upgrades, which need a
// read-write body) goes to the fallback http.Transport. The wire format
// stays Go's: requests are written with Request.Write and responses parsed
// with http.ReadResponse.
type directTransport struct {
	fallback    *http.Transport
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int           // idle connections kept per target
	idleTimeout time.Duration // an idle connection older than this is closed

	mu      sync.Mutex
	idle    map[string][]*backendConn // target host:port → idle, most recent last
	sweeper *time.Timer               // runs while any connection is idle
}

// backendConn is one kept-alive connection to a target.
type backendConn struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	key      string
	reused   bool      // it answered a request before: it may have been closed since
	idleFrom time.Time // when it went idle
	// readDeadline is the read deadline awaitAnswer left set (zero: none);
	// see waitFreely.
	readDeadline time.Time
}

// max1xx bounds the informational responses read before the final one, as
// http.Transport does, so a target cannot keep the proxy reading forever.
const max1xx = 8

func newDirectTransport(fallback *http.Transport) *directTransport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &directTransport{
		fallback:    fallback,
		dial:        d.DialContext,
		maxIdle:     fallback.MaxIdleConnsPerHost,
		idleTimeout: fallback.IdleConnTimeout,
		idle:        map[string][]*backendConn{},
	}
}

// RoundTrip implements http.RoundTripper.
func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil || req.URL.Scheme != "http" || req.Header["Upgrade"] != nil {
		return t.fallback.RoundTrip(req)
	}
	var on1xx func(int, http.Header) error
	// ReverseProxy forwards 1xx responses through the trace hook, as it
	// does with http.Transport.
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
		on1xx = func(code int, h http.Header) error { return trace.Got1xxResponse(code, textproto.MIMEHeader(h)) }
	}
	return t.send(req.Context(), req.URL.Host, req, func(w *bufio.Writer) error { return req.Write(w) }, on1xx)
}

// send writes a request without a body to the target at key (host:port)
// with write and reads the response head; req gives the method and
// whether a retry is safe. on1xx, when set, gets each informational
// response (103 Early Hints, 100 Continue) before the final one.
func (t *directTransport) send(ctx context.Context, key string, req *http.Request, write func(*bufio.Writer) error, on1xx func(int, http.Header) error) (*http.Response, error) {
	// A kept-alive connection the target closed meanwhile fails before it
	// answers a byte; the request has no body and is sent again on another
	// connection, as http.Transport does (see do).
	var res *http.Response
	err := t.do(ctx, key, replayable(req), func(bc *backendConn) (retry bool, err error) {
		res, retry, err = t.exchange(ctx, bc, req, write, on1xx, replayable(req))
		return retry, err
	})
	return res, err
}

// do runs one exchange on a connection to key (host:port), again on
// another connection when it fails before any of the response arrived on
// a kept-alive connection the target may have closed meanwhile and the
// request may be replayed (replay). A fresh connection is not retried;
// without replay only a kept-alive connection that is still open is used.
// The exchange owns the connection when it succeeds; on error do closes it.
func (t *directTransport) do(ctx context.Context, key string, replay bool, exchange func(*backendConn) (retry bool, err error)) error {
	for {
		bc, err := t.get(ctx, key, !replay)
		if err != nil {
			return err
		}
		retry, err := exchange(bc)
		if err == nil {
			return nil
		}
		bc.conn.Close()
		if !retry || !bc.reused {
			return err
		}
	}
}

// exchange sends the request on bc and reads the response head. retry
// reports that the connection failed before any of the response arrived.
func (t *directTransport) exchange(ctx context.Context, bc *backendConn, req *http.Request, write func(*bufio.Writer) error, on1xx func(int, http.Header) error, replay bool) (res *http.Response, retry bool, err error) {
	// The client going away (or the server shutting down) ends the wait
	// for a slow target: the deadline fails the blocked read or write.
	// The fast path's deadline, if left, must not end it first.
	bc.waitFreely(ctx)
	stop := watch(ctx, bc)
	fail := func(err error, retry bool) (*http.Response, bool, error) {
		if !stop() || ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, retry, err
	}
	if err := write(bc.bw); err != nil {
		return fail(fmt.Errorf("proxy: write request: %w", err), true)
	}
	if err := bc.bw.Flush(); err != nil {
		return fail(fmt.Errorf("proxy: write request: %w", err), true)
	}
	if _, err := bc.br.Peek(1); err != nil {
		return fail(fmt.Errorf("proxy: read response: %w", err), replay)
	}
	for n := 0; ; n++ {
		res, err = http.ReadResponse(bc.br, req)
		if err != nil {
			return fail(fmt.Errorf("proxy: read response: %w", err), false)
		}
		if res.StatusCode >= 200 || res.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if n == max1xx {
			return fail(errors.New("proxy: too many 1xx responses"), false)
		}
		if on1xx != nil {
			if err := on1xx(res.StatusCode, res.Header); err != nil {
				return fail(err, false)
			}
		}
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("proxy: 101 Switching Protocols to a request that asked for no upgrade"), false)
	}
	if res.Body == http.NoBody {
		// HEAD, 204, 304, Content-Length: 0: the connection is free now.
		t.release(bc, stop, !res.Close)
		return res, false, nil
	}
	res.Body = &directBody{body: res.Body, t: t, bc: bc, stop: stop, keep: !res.Close}
	return res, false, nil
}

// watch makes ctx ending fail bc's blocked reads and writes; stop undoes
// it and reports false when ctx ended first. A context that cannot end
// (the fast path's: its connection's own) costs nothing.
func watch(ctx context.Context, bc *backendConn) (stop func() bool) {
	if ctx.Done() == nil {
		return neverStopped
	}
	return context.AfterFunc(ctx, func() { _ = bc.conn.SetDeadline(aLongTimeAgo) })
}

func neverStopped() bool { return true }

// aLongTimeAgo is a deadline in the past: it fails blocked I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// directBody hands the connection back once the body has been read to its
// end (so the next response starts at the connection's read position), and
// closes it when the body is abandoned midway.
type directBody struct {
	body io.ReadCloser
	t    *directTransport
	bc   *backendConn
	stop func() bool
	keep bool
	done bool
}

func (b *directBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.done = true
		b.t.release(b.bc, b.stop, b.keep && err == io.EOF)
	}
	return n, err
}

// Close does not drain what is left, as http.Response bodies do: for a
// stream whose client went away that could be forever. The connection is
// closed instead.
func (b *directBody) Close() error {
	if !b.done {
		b.done = true
		b.t.release(b.bc, b.stop, false)
	}
	return nil
}

// release ends the request on bc: back to the pool when keep is set and
// the client did not cancel, closed otherwise.
func (t *directTransport) release(bc *backendConn, stop func() bool, keep bool) {
	if !stop() || !keep {
		bc.conn.Close()
		return
	}
	bc.reused = true
	bc.idleFrom = time.Now()
	t.mu.Lock()
	list := t.idle[bc.key]
	if len(list) >= t.maxIdle {
		t.mu.Unlock()
		bc.conn.Close()
		return
	}
	t.idle[bc.key] = append(list, bc)
	if t.sweeper == nil {
		t.sweeper = time.AfterFunc(t.idleTimeout/2, t.sweep)
	}
	t.mu.Unlock()
}

// get returns the most recently used idle connection to key, or a new one.
// checked skips idle connections the target has closed.
func (t *directTransport) get(ctx context.Context, key string, checked bool) (*backendConn, error) {
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		bc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		if !checked || stillOpen(bc.conn) {
			return bc, nil
		}
		bc.conn.Close()
	}
	conn, err := t.dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	return &backendConn{conn: conn, br: bufio.NewReaderSize(conn, maxRawHead), bw: bufio.NewWriterSize(conn, 4<<10), key: key}, nil
}

// sweep closes connections idle for longer than idleTimeout (the targets
// of stopped apps among them) and reschedules itself while any are left.
func (t *directTransport) sweep() {
	cutoff := time.Now().Add(-t.idleTimeout)
	var stale []*backendConn
	t.mu.Lock()
	for key, list := range t.idle {
		// Oldest first: the stale ones are a prefix.
		i := 0
		for i < len(list) && list[i].idleFrom.Before(cutoff) {
			i++
		}
		stale = append(stale, list[:i]...)
		if i == len(list) {
			delete(t.idle, key)
		} else if i > 0 {
			t.idle[key] = append(list[:0:0], list[i:]...)
		}
	}
	if len(t.idle) > 0 {
		t.sweeper.Reset(t.idleTimeout / 2)
	} else {
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, bc := range stale {
		bc.conn.Close()
	}
}

// CloseIdleConnections closes the idle connections of both paths.
func (t *directTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*backendConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, bc := range list {
			bc.conn.Close()
		}
	}
	t.fallback.CloseIdleConnections()
}

// replayable reports whether req may be sent again after a kept-alive
// connection failed without an answer: the target may have run it before
// the connection broke, so only methods that are safe to repeat qualify
// (http.Transport's rule).
func replayable(req *http.Request) bool {
	return replayableMethod(req.Method) || req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

func replayableMethod(m string) bool {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}
