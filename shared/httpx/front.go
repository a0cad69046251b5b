package httpx

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/atrium-suite/atrium/shared/h1"
	"github.com/prometheus/client_golang/prometheus"
)

// FastHandler answers a request on the server's fast path: an HTTP/1.1
// request without a body and without an upgrade, under a prefix registered
// with HandleFast, read by the server itself (package h1) instead of
// net/http. It reports false, having written nothing, to leave the request
// to the engine, which then serves it (and the rest of its connection) as
// usual — so a fast handler only takes the requests it can answer
// completely and leaves sign-in redirects, errors and anything unusual to
// the routes.
//
// The ResponseWriter writes straight to the connection; it implements
// http.Flusher and proxy.ConnWriter, not http.Hijacker. The request's
// context never ends: the server does not read from a connection while a
// request is served, so it does not see a client go away before it writes.
type FastHandler func(w http.ResponseWriter, r *h1.Request) bool

// HandleFast registers h for requests whose path starts with prefix. route
// names them in metrics, as a gin route pattern would (e.g.
// "/content/:guid/*path"). Call it before Serve.
//
// Why: net/http's server costs more per request than the proxying it
// fronts (a goroutine per request to watch for the client going away, a
// context with cancel, the response machinery). Connect's content traffic
// is nearly all small bodiless requests proxied to an app, and there that
// cost decided whether Atrium kept up with nginx (scripts/bench/connect.sh).
// Every other request, and every connection once it sends one, stays with
// net/http.
func (s *Server) HandleFast(prefix, route string, h FastHandler) {
	if s.front == nil {
		s.front = &front{s: s, conns: map[*fastConn]struct{}{}}
	}
	s.front.routes = append(s.front.routes, fastRoute{prefix: prefix, route: route, h: h})
}

type fastRoute struct {
	prefix, route string
	h             FastHandler
	// counters caches the route's metrics by method and status, so a
	// request costs a map read instead of two label-hash lookups.
	counters atomic.Pointer[map[methodStatus]routeMetrics]
}

type methodStatus struct {
	method string
	status int
}

type routeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts a request of the route, as metrics.observe does.
func (rt *fastRoute) observe(m *metrics, method string, status int, d time.Duration) {
	key := methodStatus{method, status}
	var cache map[methodStatus]routeMetrics
	if p := rt.counters.Load(); p != nil {
		cache = *p
	}
	rm, ok := cache[key]
	if !ok {
		rm = routeMetrics{
			requests: m.requests.WithLabelValues(method, rt.route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(method, rt.route),
		}
		if len(cache) < 64 { // methods × statuses seen; bounded all the same
			next := make(map[methodStatus]routeMetrics, len(cache)+1)
			maps.Copy(next, cache)
			next[key] = rm
			rt.counters.Store(&next)
		}
	}
	rm.requests.Inc()
	rm.duration.Observe(d.Seconds())
}

// front accepts the server's connections and serves the fast routes on
// them; a connection whose request it does not take is handed, with what
// was read from it, to the http.Server through handoff.
type front struct {
	s       *Server
	routes  []fastRoute
	handoff *connQueue
	// ctx is the fast requests' context. It never ends: a context that
	// can end costs every proxied request a registration with it
	// (context.AfterFunc), and a closed server closes the connections
	// instead.
	ctx context.Context

	// closing is read on every request, so it is an atomic, not under mu
	// (which guards conns, touched once per connection).
	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	wg      sync.WaitGroup
}

type fastConn struct {
	c    net.Conn
	idle atomic.Bool // waiting for a request: shutdown may close it at once
}

// fastBufSize bounds a request head the front reads itself; a larger one
// (big cookies) goes to net/http, which allows up to MaxHeaderBytes.
const fastBufSize = 16 << 10

// serve runs the accept loop until the listener is closed.
func (f *front) serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if f.isClosing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// As net/http: back off on temporary accept errors
				// (out of file descriptors) instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				f.s.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		fc := &fastConn{c: c}
		if !f.track(fc) {
			c.Close()
			continue
		}
		go f.conn(fc)
	}
}

func (f *front) isClosing() bool { return f.closing.Load() }

func (f *front) track(fc *fastConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	f.conns[fc] = struct{}{}
	f.wg.Add(1)
	return true
}

func (f *front) untrack(fc *fastConn) {
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
	f.wg.Done()
}

// setIdle marks fc as waiting for a request or not, and reports false
// when the server is shutting down (the connection is then closed, not
// waited on). Marking comes before the check and shutdown sets closing
// before it looks at the marks, so either the connection sees closing or
// shutdown sees it idle; the caller has set its idle read deadline before,
// so shutdown's deadline in the past is the one that holds.
func (f *front) setIdle(fc *fastConn, idle bool) bool {
	fc.idle.Store(idle)
	return !f.closing.Load()
}

// shutdown stops the front: idle connections are closed now, busy ones
// after their current response, which says Connection: close. It returns
// when all are gone or ctx ends (then the rest are closed).
func (f *front) shutdown(ctx context.Context) error {
	f.closing.Store(true)
	f.mu.Lock()
	for fc := range f.conns {
		if fc.idle.Load() {
			_ = fc.c.SetReadDeadline(aLongTimeAgo)
		}
	}
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		f.close()
		return ctx.Err()
	}
}

// close ends every connection at once. As http.Server.Close, it does not
// wait for the handlers: one waiting on a slow target returns when the
// target answers, and its write to the closed connection fails.
func (f *front) close() {
	f.closing.Store(true)
	f.mu.Lock()
	for fc := range f.conns {
		fc.c.Close()
	}
	f.mu.Unlock()
}

var aLongTimeAgo = time.Unix(1, 0)

// conn serves one connection's requests until it closes, is handed off or
// the server shuts down.
func (f *front) conn(fc *fastConn) {
	defer f.untrack(fc)
	c := fc.c
	keep := false // true once the connection has been handed off
	defer func() {
		if !keep {
			c.Close()
		}
	}()
	if _, ok := c.(*tls.Conn); ok {
		// TLS is net/http's: it sets Request.TLS, which forwarded
		// headers and secure cookies depend on.
		keep = f.handoff.push(c, nil)
		return
	}
	br := bufio.NewReaderSize(c, fastBufSize)
	bw := bufio.NewWriterSize(c, 4<<10)
	remote := c.RemoteAddr().String()
	cfg := &f.s.cfg
	// Reused for each request on the connection (see run).
	req := new(h1.Request)
	w := &rawWriter{bw: bw, conn: c, closing: f.isClosing, header: make(http.Header, 4), ids: new([1]string)}
	// The idle deadline is set again only when the one set last is more
	// than an eighth of the idle timeout old: under load every request
	// would otherwise move it, a timer update that showed in the proxy's
	// profile. An idle connection is closed between 7/8 and all of the
	// idle timeout after its last request.
	var idleSince time.Time // when the idle deadline was set; zero: another deadline is set
	for {
		if now := time.Now(); now.Sub(idleSince) > cfg.IdleTimeout/8 {
			idleSince = now
			_ = c.SetReadDeadline(now.Add(cfg.IdleTimeout))
		}
		if !f.setIdle(fc, true) {
			return
		}
		if _, err := br.Peek(1); err != nil {
			return // closed, idle too long, or the server shutting down
		}
		if !f.setIdle(fc, false) {
			return // shutting down: a request that just arrived is not started
		}
		// Only a head still coming gets the header timeout.
		head, err := h1.PeekHead(br, func() {
			idleSince = time.Time{}
			_ = c.SetReadDeadline(time.Now().Add(cfg.ReadHeaderTimeout))
		})
		if err != nil && !errors.Is(err, h1.ErrHeadTooLarge) && !errors.Is(err, h1.ErrNotHead) {
			return // the client stopped sending mid-head
		}
		var rt *fastRoute
		if err == nil {
			rt = f.take(head, remote, req) // else net/http reads it
		}
		if rt == nil || !f.run(rt, w, req) {
			// Not a fast request: net/http reads it again from the start.
			buf, _ := br.Peek(br.Buffered())
			keep = f.handoff.push(c, bytes.Clone(buf))
			return
		}
		if _, err := br.Discard(len(head)); err != nil {
			return
		}
		if req.Close || f.isClosing() {
			return
		}
		if br.Buffered() == 0 {
			// The client is reading this response; its next request is
			// not here yet. Letting other goroutines run first means the
			// read below usually finds it, instead of failing (EAGAIN),
			// parking on the poller and being woken for it: with the
			// same yield in the proxy (exchangeRaw), a request then costs
			// two reads and two writes, as in nginx, and the runtime's
			// monitor thread stays asleep (strace -c: 2.75 → 2.02 reads,
			// 0.39 → 0.03 nanosleeps per request).
			runtime.Gosched()
		}
	}
}

// take parses head into req and returns its fast route, or nil when the
// request is not one the fast path serves (h1.Parse leaves anything
// unusual to net/http).
func (f *front) take(head []byte, remote string, req *h1.Request) *fastRoute {
	if !h1.ParseInto(req, head) {
		return nil
	}
	for i := range f.routes {
		if strings.HasPrefix(req.Path, f.routes[i].prefix) {
			req.RemoteAddr = remote
			req.Ctx = f.ctx
			if f.isClosing() {
				req.Close = true // the last response says so
			}
			return &f.routes[i]
		}
	}
	return nil
}

// run serves req with rt's handler and reports whether it did; the
// request log and metrics are the engine's (accessLog, metrics).
func (f *front) run(rt *fastRoute, w *rawWriter, req *h1.Request) (served bool) {
	s := f.s
	start := time.Now()
	// One writer per connection, reset for each request: a handler may
	// not keep its ResponseWriter past its return.
	header, ids := w.header, w.ids
	clear(header)
	// closing is the connection's one method value: f.isClosing here
	// would allocate one per request.
	*w = rawWriter{bw: w.bw, conn: w.conn, method: req.Method, close: req.Close, closing: w.closing, header: header, ids: ids}
	hid, _ := req.Header(RequestIDHeader)
	id := requestIDFor(hid)
	w.ids[0] = id
	header[RequestIDHeader] = w.ids[:]
	s.metrics.inflight.Inc()
	defer s.metrics.inflight.Dec()
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				s.log.Error("request failed", "status", 500, "msg", "panic", "err", fmt.Errorf("panic: %v", p), "request_id", id)
			}
			switch {
			case !w.wroteHeader && !w.rawAsked:
				clear(w.header)
				w.header[RequestIDHeader] = []string{id}
				w.header["Content-Type"] = []string{"text/plain; charset=utf-8"}
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, "500 Internal Server Error: internal error\n")
				w.broken = true
				w.finish()
			case w.wroteHeader && !w.raw:
				w.broken = true // what was written goes out; the connection ends
				w.finish()
			default:
				w.bw.Reset(nil) // the handler's own bytes, cut short: dropped
			}
			served = true
			req.Close = true
		}
	}()
	if !rt.h(w, req) {
		if w.wroteHeader {
			// A handler that wrote must not decline: the response has begun.
			panic(fmt.Sprintf("httpx: fast handler for %s declined after writing", rt.prefix))
		}
		return false
	}
	w.finish()
	if w.broken || w.closeAfter || w.close {
		req.Close = true
	}
	dur := time.Since(start)
	rt.observe(s.metrics, req.Method, w.status, dur)
	host, _, _ := net.SplitHostPort(req.RemoteAddr)
	s.logRequest(req.Ctx, req.Method, req.Path, w.status, int(w.written), dur, host, id)
	return true
}

// rawWriter is the fast path's http.ResponseWriter: the status line and
// headers as the handler set them, then the body framed by its
// Content-Length, or chunked when the handler set none.
type rawWriter struct {
	bw          *bufio.Writer
	conn        net.Conn // the client's, for ClientConn
	method      string
	close       bool        // the client asked to close the connection
	closing     func() bool // the server is shutting down
	header      http.Header
	status      int
	wroteHeader bool
	noBody      bool  // HEAD, 204, 304
	chunked     bool  // no Content-Length: chunked encoding
	length      int64 // the Content-Length, when not chunked
	written     int64 // body bytes written
	trailers    []string
	closeAfter  bool       // the connection ends after this response
	broken      bool       // the response could not be completed
	raw         bool       // written by the handler itself (RawConn, RawDone)
	rawAsked    bool       // RawConn was called: bytes may be on the way
	ids         *[1]string // the X-Request-Id value's backing array
}

var _ http.Flusher = (*rawWriter)(nil)

func (w *rawWriter) Header() http.Header { return w.header }

func (w *rawWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response (103 Early Hints): sent at once with
		// the headers set so far; the final one follows.
		w.writeStatus(code)
		w.writeHeaders(nil)
		w.bw.WriteString("\r\n")
		if err := w.bw.Flush(); err != nil {
			w.broken = true
		}
		return
	}
	w.wroteHeader = true
	w.status = code
	h := w.header
	w.noBody = w.method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusSwitchingProtocols
	w.length = -1
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64); err == nil && n >= 0 {
			w.length = n
		}
	}
	if w.length < 0 {
		delete(h, "Content-Length")
		if !w.noBody {
			w.chunked = true
		}
	}
	if w.RawClose() || httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	if w.chunked {
		for _, v := range h["Trailer"] {
			for k := range strings.SplitSeq(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
				}
			}
		}
	}
	w.writeStatus(code)
	w.writeHeaders(hopHeaders)
	if _, ok := h["Date"]; !ok {
		w.bw.WriteString("Date: ")
		w.bw.WriteString(httpDate())
		w.bw.WriteString("\r\n")
	}
	if w.chunked {
		w.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		w.bw.WriteString("Connection: close\r\n")
	}
	w.bw.WriteString("\r\n")
}

// hopHeaders are the headers the writer frames itself, not the handler's.
var hopHeaders = map[string]bool{"Connection": true, "Transfer-Encoding": true}

func (w *rawWriter) writeStatus(code int) {
	w.bw.WriteString("HTTP/1.1 ")
	w.bw.WriteString(statusLine(code))
	w.bw.WriteString("\r\n")
}

// writeHeaders writes the handler's headers, leaving out skip's and the
// trailer values (http.TrailerPrefix), with line breaks in values turned
// into spaces as net/http does.
func (w *rawWriter) writeHeaders(skip map[string]bool) {
	for k, vv := range w.header {
		if skip[k] || strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			w.bw.WriteString(k)
			w.bw.WriteString(": ")
			w.bw.WriteString(h1.FieldValue(v))
			w.bw.WriteString("\r\n")
		}
	}
}

func (w *rawWriter) Write(p []byte) (int, error) {
	if w.raw {
		return 0, errBroken
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.broken {
		return 0, errBroken
	}
	if w.noBody {
		if w.method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.chunked {
		if left := w.length - w.written; int64(len(p)) > left {
			n, _ := w.write(p[:left])
			return n, http.ErrContentLength
		}
		return w.write(p)
	}
	var size [20]byte
	w.bw.Write(append(strconv.AppendInt(size[:0], int64(len(p)), 16), '\r', '\n'))
	n, err := w.write(p)
	w.bw.WriteString("\r\n")
	return n, err
}

var errBroken = errors.New("httpx: connection broken")

func (w *rawWriter) write(p []byte) (int, error) {
	n, err := w.bw.Write(p)
	w.written += int64(n)
	if err != nil {
		w.broken = true
	}
	return n, err
}

// RawConn lets a handler write the whole response as bytes (shared/proxy
// copying a target's response); the headers set so far are the handler's
// to write. It implements proxy.ConnWriter.
func (w *rawWriter) RawConn() *bufio.Writer {
	if w.wroteHeader || w.broken {
		return nil
	}
	// A panic after this must not write a 500 after the handler's own
	// bytes; the connection is closed instead.
	w.rawAsked = true
	return w.bw
}

// RawClose reports whether this response ends the connection.
func (w *rawWriter) RawClose() bool {
	if !w.close && w.closing() {
		w.close = true
	}
	return w.close
}

// ClientConn is the client's connection, for a handler to look at whether
// the client is still there. It implements proxy.ConnWriter.
func (w *rawWriter) ClientConn() net.Conn { return w.conn }

// RawDone records the response a handler wrote through RawConn.
func (w *rawWriter) RawDone(status int, bodyBytes int64, keepAlive bool) {
	w.wroteHeader, w.raw = true, true
	w.status, w.written = status, bodyBytes
	if !keepAlive {
		w.broken = true
	}
}

// Flush sends what is buffered to the client.
func (w *rawWriter) Flush() {
	_ = w.FlushError()
}

// FlushError is Flush reporting the error (http.ResponseController uses it).
func (w *rawWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.bw.Flush(); err != nil {
		w.broken = true
		return err
	}
	return nil
}

// finish ends the response: the last chunk and trailers, a 200 with no
// body if the handler wrote nothing, and the flush. A fixed-length body cut
// short leaves the connection to be closed, so the client cannot take the
// part for the whole.
func (w *rawWriter) finish() {
	if w.raw {
		if w.broken {
			w.bw.Reset(nil)
		}
		return
	}
	if !w.wroteHeader {
		if _, ok := w.header["Content-Length"]; !ok && w.method != http.MethodHead {
			w.header["Content-Length"] = []string{"0"}
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked && !w.broken {
		w.bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				w.bw.WriteString(k + ": " + h1.FieldValue(v) + "\r\n")
			}
		}
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
				for _, v := range vv {
					w.bw.WriteString(name + ": " + h1.FieldValue(v) + "\r\n")
				}
			}
		}
		w.bw.WriteString("\r\n")
	}
	if !w.chunked && !w.noBody && w.written < w.length {
		w.broken = true
	}
	if err := w.bw.Flush(); err != nil {
		w.broken = true
	}
	if w.broken {
		w.bw.Reset(nil) // drop anything left; the connection is closed
	}
}

// statusLine is "200 OK" for 200, cached for the common codes.
func statusLine(code int) string {
	if code < len(statusLines) && statusLines[code] != "" {
		return statusLines[code]
	}
	return fmt.Sprintf("%03d %s", code, http.StatusText(code))
}

var statusLines = func() []string {
	s := make([]string, 600)
	for code := 100; code < 600; code++ {
		if t := http.StatusText(code); t != "" {
			s[code] = fmt.Sprintf("%d %s", code, t)
		}
	}
	return s
}()

// httpDate is the current time in the Date header's format, formatted once
// a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &dateString{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateString struct {
	unix int64
	s    string
}

var cachedDate atomic.Pointer[dateString]

// connQueue is the net.Listener the http.Server serves: the connections
// the front hands off, each replaying the bytes the front read from it.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to the http.Server, with read the bytes to replay first; it
// reports false when the server is closed (the caller closes c).
func (q *connQueue) push(c net.Conn, read []byte) bool {
	if len(read) > 0 {
		c = &replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(read), c)}
	}
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// replayConn reads the bytes the front already took from the connection
// before the connection's own.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// ReadFrom keeps the connection's own ReadFrom (sendfile from a file) for
// net/http's responses served from files: static content, downloads.
func (c *replayConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite lets net/http half-close the connection after an error
// response, as it does with a plain TCP connection.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// logRequest and the engine's accessLog write the same request log line.
func (s *Server) logRequest(ctx context.Context, method, path string, status, bytes int, dur time.Duration, remote, id string) {
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case path == "/__ping__" || path == "/healthz" || path == "/readyz" || path == "/metrics":
		// Probes hit these every few seconds; at info they would drown
		// the log.
		level = slog.LevelDebug
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	s.log.LogAttrs(ctx, level, "request",
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Int("bytes", bytes),
		slog.Duration("duration", dur),
		slog.String("remote", remote),
		slog.String("request_id", id),
	)
}
