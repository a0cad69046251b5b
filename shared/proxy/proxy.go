// Package proxy forwards requests under a URL prefix to the processes the
// launcher runs: Connect's apps at /content/{guid}/ and Workbench's sessions at
// /s/{id}/. It is an http.Handler built on httputil.ReverseProxy, so websocket
// upgrades and streamed responses (server-sent events, chunked output) pass
// through, and request bodies are streamed, never buffered. Which process
// answers is the Balancer's decision; StickyBalancer pins a browser to one
// process with a cookie and can prefer the least loaded one.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
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
	// Transport reaches the targets; nil means a transport that never uses
	// an HTTP proxy from the environment.
	Transport http.RoundTripper
}

// Proxy is an http.Handler forwarding requests under one prefix.
type Proxy struct {
	cfg       Config
	prefix    string // "/content/abc/", escaped form
	base      string // "/content/abc": X-Forwarded-Prefix, the redirect source
	log       *slog.Logger
	rp        *httputil.ReverseProxy
	hasSticky bool
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
	_, p.hasSticky = cfg.Balancer.(Sticky)
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // targets are local processes; HTTP_PROXY must not apply
		t.MaxIdleConnsPerHost = 32
		tr = t
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     tr,
		FlushInterval: cfg.FlushInterval,
		ErrorHandler:  p.backendError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return p, nil
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
	t, release, err := p.cfg.Balancer.Pick(r)
	if err != nil {
		if errors.Is(err, ErrNoTarget) {
			p.log.Info("no target for request", "path", path)
			w.Header().Set("Retry-After", "5")
			writeError(w, r, http.StatusServiceUnavailable, "The application is not running yet; try again in a few seconds.")
			return
		}
		p.log.Error("picking a target", "path", path, "err", err)
		writeError(w, r, http.StatusBadGateway, "The application is not available.")
		return
	}
	if release != nil {
		// For a websocket this runs when the connection closes, so a
		// long-lived session keeps counting as load.
		defer release()
	}
	if p.hasSticky {
		if c := p.cfg.Balancer.(Sticky).AffinityCookie(r, t); c != nil {
			http.SetCookie(w, c)
		}
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(Target)
	// Rewrite has already dropped the incoming X-Forwarded-* headers.
	if p.cfg.TrustForwarded {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetXForwarded()
	if p.cfg.TrustForwarded {
		for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v := pr.In.Header.Get(h); v != "" {
				pr.Out.Header.Set(h, v)
			}
		}
	}
	pr.Out.Header.Set("X-Forwarded-Prefix", p.base)
	if p.cfg.StripPrefix {
		rest := strings.TrimPrefix(pr.In.URL.EscapedPath(), p.base) // keeps the leading "/"
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
	pr.Out.Host = pr.In.Host
	dropAtriumCookies(pr.Out.Header)
	if p.cfg.Headers != nil {
		p.cfg.Headers(pr.In, pr.Out.Header)
	}
	restoreWebSocketCase(pr.Out.Header)
}

// dropAtriumCookies removes the suite's own cookies (sign-in sessions, sticky
// routing): the app is user code and must never see a viewer's session,
// which would let it act as the viewer. The app's own cookies pass.
func dropAtriumCookies(h http.Header) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
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
	for _, k := range []string{"Key", "Version", "Protocol", "Extensions"} {
		canon := "Sec-Websocket-" + k
		if v, ok := h[canon]; ok {
			delete(h, canon)
			h["Sec-WebSocket-"+k] = v
		}
	}
}

// backendError answers a request the target could not take.
func (p *Proxy) backendError(w http.ResponseWriter, r *http.Request, err error) {
	t, _ := r.Context().Value(targetKey{}).(Target)
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
