// Package proxy forwards requests under a URL prefix to the processes the
// launcher runs: Connect's apps at /content/{guid}/ and Workbench's sessions at
// /s/{id}/. It is an http.Handler built on httputil.ReverseProxy, so websocket
// upgrades and streamed responses (server-sent events, chunked output) pass
// through, and request bodies are streamed, never buffered. Which process
// answers is the Balancer's decision; StickyBalancer pins a browser to one
// process with a cookie and can prefer the least loaded one. Every proxy
// shares one pool of kept-alive connections to the targets, sized for
// hundreds of concurrent clients, and the per-request work is kept free of
// avoidable allocations (BenchmarkProxyServeHTTP, scripts/bench/connect.sh).
// ServeFast is the same proxy for shared/httpx's fast path: it copies the
// request's header lines to the target and the target's response back as
// bytes, with the changes ServeHTTP makes.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Target is one process that can answer requests.
type Target struct {
	URL *url.URL // e.g. http://127.0.0.1:port; a path is prepended to the forwarded one
	ID  string   // stable for the life of the process, e.g. the launcher job's ID
}

// Balancer decides which target answers a request. release is called when
// the request (or the websocket it became) is finished; it may be nil.
type Balancer interface {
	Pick(r *http.Request) (t Target, release func(), err error)
}

// Sticky is implemented by balancers that pin a client to a target with a
// cookie; the proxy adds the cookie to the response.
type Sticky interface {
	// AffinityCookie returns the cookie that sends r's client to t next
	// time, or nil when r already carries it.
	AffinityCookie(r *http.Request, t Target) *http.Cookie
}

// Admitter is a Balancer that only decides whether and when a request may
// go, leaving the choice of process to a StickyBalancer it keeps: Connect's
// scheduler, which holds requests while its processes are full. The proxy
// then uses the sticky balancer's allocation-free path itself: Admit
// (which may wait), the sticky pick, and Done when the request (or the
// websocket it became) is over.
type Admitter interface {
	Balancer
	// Admit returns nil once a request may go to one of StickyBalancer's
	// targets, or the error Pick would return; ctx is the request's.
	Admit(ctx context.Context) error
	// Done ends an admitted request.
	Done()
	StickyBalancer() *StickyBalancer
}

// ErrNoTarget is what a Balancer returns when no process is running; the
// proxy answers 503 so clients (and a scheduler watching the logs) can tell
// "nothing started yet" from "the process broke" (502).
var ErrNoTarget = errors.New("proxy: no target available")

// Config configures a Proxy.
type Config struct {
	// Prefix is the path the proxy is mounted at, e.g. "/content/abc/"
	// (a missing trailing slash is added). Requests outside it get 404; the
	// prefix itself without its slash is redirected to it.
	Prefix string
	// StripPrefix removes Prefix before forwarding, for servers that expect
	// to live at / (code-server, RStudio). False keeps it, for servers told
	// their base path (Jupyter's base_url, apps with a root_path).
	StripPrefix bool
	Balancer    Balancer
	Logger      *slog.Logger
	// Headers, when set, edits the forwarded request's headers (h), e.g. to
	// add RStudio-Connect-Credentials or a Jupyter token. It runs after the
	// proxy's own header handling, so it can override it.
	Headers func(r *http.Request, h http.Header)
	// FlushInterval is how often a response is flushed to the client while
	// it is copied; -1 flushes after every write. Server-sent events and
	// responses without a Content-Length are always flushed immediately.
	FlushInterval time.Duration
	// TrustForwarded keeps the incoming X-Forwarded-For/-Host/-Proto and
	// appends to them. Only set it when every request comes through a proxy
	// that sets them (the suite's router); otherwise a client could claim
	// any address.
	TrustForwarded bool
	// Transport reaches the targets; nil means the package's shared one:
	// kept-alive connections to every target, requests without a body sent
	// on the handler's goroutine (see directTransport), no HTTP proxy from
	// the environment.
	Transport http.RoundTripper
}

// Proxy is an http.Handler forwarding requests under one prefix.
type Proxy struct {
	cfg      Config
	prefix   string // "/content/abc/", escaped form
	base     string // "/content/abc": X-Forwarded-Prefix, the redirect source
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	sticky   *StickyBalancer  // Balancer, when it is one: the allocation-free path
	admit    Admitter         // Balancer, when it admits requests for sticky
	affinity Sticky           // Balancer, when it sets affinity cookies
	pool     *directTransport // the shared transport, when requests may take the direct path
}

type targetKey struct{}

// New validates cfg and returns the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Balancer == nil {
		return nil, errors.New("proxy: config needs a Balancer")
	}
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("proxy: prefix %q must start with /", cfg.Prefix)
	}
	if strings.ContainsAny(cfg.Prefix, "?#") || strings.Contains(cfg.Prefix, "//") {
		return nil, fmt.Errorf("proxy: prefix %q is not a plain path", cfg.Prefix)
	}
	prefix := (&url.URL{Path: cfg.Prefix}).EscapedPath()
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("prefix", prefix)
	p := &Proxy{cfg: cfg, prefix: prefix, base: strings.TrimSuffix(prefix, "/"), log: log}
	p.sticky, _ = cfg.Balancer.(*StickyBalancer)
	if a, ok := cfg.Balancer.(Admitter); ok {
		p.admit, p.sticky = a, a.StickyBalancer()
	}
	p.affinity, _ = cfg.Balancer.(Sticky)
	tr := cfg.Transport
	if tr == nil {
		shared := sharedTransport()
		tr = shared
		if cfg.FlushInterval <= 0 {
			// Periodic flushing is ReverseProxy's; forward flushes per write.
			p.pool = shared
		}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     tr,
		FlushInterval: cfg.FlushInterval,
		ErrorHandler:  p.backendError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BufferPool:    copyBuffers,
	}
	return p, nil
}

// sharedTransport is the one connection pool of every Proxy built without
// a Transport. Targets are local processes, so one pool serves them all and
// a proxy rebuilt for a new process does not strand idle connections.
var sharedTransport = sync.OnceValue(func() *directTransport {
	return newDirectTransport(&http.Transport{
		Proxy: nil, // targets are local processes; HTTP_PROXY must not apply
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		// Every client connection may have a request in flight to the same
		// process: with fewer idle connections kept than that, each burst
		// closes and reopens connections to the app (the old limit of 32
		// cost a third of the throughput at 250 clients). 0 = no total cap.
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		// Pass bodies through as the app encoded them: no gzip added by the
		// transport and no decompressing on the way back.
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		// Apps speak HTTP/1.1 (and websockets over it); no HTTP/2 attempt.
		ForceAttemptHTTP2: false,
	})
})

// copyBuffers recycles the 32 KiB buffers responses are copied through:
// without a pool httputil.ReverseProxy allocates (and zeroes) one per
// request, which was the largest single cost under load.
var copyBuffers httputil.BufferPool = bufferPool{}

type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		buffers.Put(&b)
	}
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if path == p.base && p.base != "" {
		// Relative links in the app resolve against the directory, so the
		// prefix must end in a slash before anything is forwarded.
		u := *r.URL
		u.Path, u.RawPath = p.prefix, ""
		code := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusPermanentRedirect
		}
		http.Redirect(w, r, u.RequestURI(), code)
		return
	}
	if !strings.HasPrefix(path, p.prefix) {
		writeError(w, r, http.StatusNotFound, "Not found: this address is outside "+p.prefix+".")
		return
	}
	var t Target
	if p.sticky != nil {
		// The common case (Connect's apps, Workbench's sessions), without
		// the release closure and second cookie parse of the general path.
		val, has := cookieValue(r.Header, p.sticky.cookie)
		e, carried, err := p.admitAndPick(r.Context(), val, has)
		if err != nil {
			p.pickFailed(w, r, path, err)
			return
		}
		if p.admit != nil {
			defer p.admit.Done()
		}
		// For a websocket this runs when the connection closes, so a
		// long-lived session keeps counting as load.
		defer e.inflight.Add(-1)
		if !carried {
			w.Header()["Set-Cookie"] = append(w.Header()["Set-Cookie"], e.setCookie[tlsIndex(r)])
		}
		t = e.t
	} else {
		var release func()
		var err error
		t, release, err = p.cfg.Balancer.Pick(r)
		if err != nil {
			p.pickFailed(w, r, path, err)
			return
		}
		if release != nil {
			defer release()
		}
		if p.affinity != nil {
			if c := p.affinity.AffinityCookie(r, t); c != nil {
				http.SetCookie(w, c)
			}
		}
	}
	if p.direct(r) {
		p.forward(w, r, t)
		return
	}
	p.rp.ServeHTTP(w, r.WithContext(withTarget(r.Context(), t)))
}

// admitAndPick is the sticky pick, after the Admitter (when there is one)
// let the request go. A process can exit between the two; the request is
// then admitted again (it waits for another) rather than refused.
// cookie is the affinity cookie's value, when the client sent one (has).
func (p *Proxy) admitAndPick(ctx context.Context, cookie string, has bool) (*entry, bool, error) {
	if p.admit == nil {
		return p.sticky.pick(cookie, has)
	}
	for attempt := 0; ; attempt++ {
		if err := p.admit.Admit(ctx); err != nil {
			return nil, false, err
		}
		e, carried, err := p.sticky.pick(cookie, has)
		if err == nil {
			return e, carried, nil
		}
		p.admit.Done()
		if !errors.Is(err, ErrNoTarget) || attempt == 2 {
			return nil, false, err
		}
	}
}

func withTarget(ctx context.Context, t Target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

// pickFailed answers a request the Balancer found no target for.
func (p *Proxy) pickFailed(w http.ResponseWriter, r *http.Request, path string, err error) {
	if errors.Is(err, ErrNoTarget) {
		p.log.Info("no target for request", "path", path)
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, "The application is not running yet; try again in a few seconds.")
		return
	}
	p.log.Error("picking a target", "path", path, "err", err)
	writeError(w, r, http.StatusBadGateway, "The application is not available.")
}

func tlsIndex(r *http.Request) int {
	if r.TLS != nil {
		return 1
	}
	return 0
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	p.rewriteTo(pr, pr.In.Context().Value(targetKey{}).(Target))
}

// rewriteTo sets the outgoing request of pr up for target t: forwarding
// headers, path, Host, cookies, the Headers hook. Both paths (forward and
// ReverseProxy) use it, so the target sees the same request either way.
func (p *Proxy) rewriteTo(pr *httputil.ProxyRequest, t Target) {
	in, h := pr.In, pr.Out.Header
	// What SetXForwarded does, with the four values the proxy sets in one
	// allocation. Each slice is capped at its length, so a Headers hook that
	// appends to one gets a copy instead of writing over the next.
	// ReverseProxy has already dropped the incoming X-Forwarded-* headers.
	vals := make([]string, 4)
	if clientIP, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := in.Header["X-Forwarded-For"]; p.cfg.TrustForwarded && len(prior) > 0 {
			clientIP = strings.Join(prior, ", ") + ", " + clientIP
		}
		vals[0] = clientIP
		h["X-Forwarded-For"] = vals[0:1:1]
	}
	vals[1] = in.Host
	vals[2] = "http"
	if in.TLS != nil {
		vals[2] = "https"
	}
	if p.cfg.TrustForwarded {
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			vals[1] = v
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			vals[2] = v
		}
	}
	vals[3] = p.base
	h["X-Forwarded-Host"] = vals[1:2:2]
	h["X-Forwarded-Proto"] = vals[2:3:3]
	h["X-Forwarded-Prefix"] = vals[3:4:4]
	if p.cfg.StripPrefix {
		rest := strings.TrimPrefix(in.URL.EscapedPath(), p.base) // keeps the leading "/"
		unescaped, err := url.PathUnescape(rest)
		if err != nil {
			unescaped = rest // EscapedPath came from a parsed URL, so this cannot happen
		}
		pr.Out.URL.Path, pr.Out.URL.RawPath = unescaped, rest
	}
	pr.SetURL(t.URL)
	// Keep the browser's Host: Jupyter and Tornado-based apps compare the
	// websocket Origin with Host, and apps build absolute URLs from it. The
	// target's own address means nothing outside this machine.
	pr.Out.Host = in.Host
	dropAtriumCookies(h)
	if p.cfg.Headers != nil {
		p.cfg.Headers(in, h)
	}
	restoreWebSocketCase(h)
}

// dropAtriumCookies removes the suite's own cookies (sign-in sessions, sticky
// routing): the app is user code and must never see a viewer's session,
// which would let it act as the viewer. The app's own cookies pass.
func dropAtriumCookies(h http.Header) {
	lines := h["Cookie"]
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "atrium_") }) {
		return // nothing to drop: forward the lines as they are
	}
	var kept []string
	for _, line := range lines {
		for pair := range strings.SplitSeq(line, ";") {
			pair = strings.TrimSpace(pair)
			name, _, _ := strings.Cut(pair, "=")
			if pair == "" || strings.HasPrefix(name, "atrium_") {
				continue
			}
			kept = append(kept, pair)
		}
	}
	if len(kept) == 0 {
		h.Del("Cookie")
		return
	}
	h.Set("Cookie", strings.Join(kept, "; "))
}

// restoreWebSocketCase writes the Sec-WebSocket-* request headers with the
// RFC 6455 spelling. Go canonicalises them to Sec-Websocket-*, and some
// websocket servers match header names case-sensitively (golang/go#18495;
// Coder does the same).
func restoreWebSocketCase(h http.Header) {
	for _, n := range webSocketNames {
		if v, ok := h[n.canonical]; ok {
			delete(h, n.canonical)
			h[n.rfc] = v
		}
	}
}

var webSocketNames = [...]struct{ canonical, rfc string }{
	{"Sec-Websocket-Key", "Sec-WebSocket-Key"},
	{"Sec-Websocket-Version", "Sec-WebSocket-Version"},
	{"Sec-Websocket-Protocol", "Sec-WebSocket-Protocol"},
	{"Sec-Websocket-Extensions", "Sec-WebSocket-Extensions"},
}

// backendError answers a request the target could not take.
func (p *Proxy) backendError(w http.ResponseWriter, r *http.Request, err error) {
	t, _ := r.Context().Value(targetKey{}).(Target)
	p.backendErrorFor(w, r, t, err)
}

func (p *Proxy) backendErrorFor(w http.ResponseWriter, r *http.Request, t Target, err error) {
	if r.Context().Err() != nil {
		// The client went away; there is nobody to answer.
		p.log.Debug("client gone", "target", t.ID, "path", r.URL.Path, "err", err)
		return
	}
	p.log.Warn("target unavailable", "target", t.ID, "url", t.URL.String(), "path", r.URL.Path, "err", err)
	writeError(w, r, http.StatusBadGateway, "The application is not responding: it may be starting, restarting or have stopped. Try again shortly.")
}

// writeError writes a short error in the shape the suite's API uses for
// JSON clients ({code, error, payload}) and as plain text otherwise.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 0, "error": msg, "payload": nil})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}
