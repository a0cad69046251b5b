package httpx

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// RequestIDHeader carries the request id in and out.
const RequestIDHeader = "X-Request-Id"

type ctxKey int

const requestIDKey ctxKey = iota

var goodRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID keeps a sane incoming id (a proxy in front may have set one, and
// keeping it lets an admin follow a request through both logs) or mints one.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !goodRequestID.MatchString(id) {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(requestIDKey, id)
		c.Header(RequestIDHeader, id)
		c.Next()
	}
}

// RequestID returns the id of the request c is serving.
func RequestID(c *gin.Context) string {
	v, _ := c.Get(requestIDKey)
	id, _ := v.(string)
	return id
}

func (s *Server) accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelInfo
		switch {
		case status >= 500:
			level = slog.LevelError
		case c.Request.URL.Path == "/__ping__" || c.Request.URL.Path == "/healthz" ||
			c.Request.URL.Path == "/readyz" || c.Request.URL.Path == "/metrics":
			// Probes hit these every few seconds; at info they would drown
			// the log.
			level = slog.LevelDebug
		}
		s.log.LogAttrs(c.Request.Context(), level, "request",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Int("bytes", c.Writer.Size()),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", c.ClientIP()),
			slog.String("request_id", RequestID(c)),
		)
	}
}

// renderErrors is the one place an error becomes a response. Handlers call
// c.Error(err) (and return or c.Abort()); if they wrote nothing, the last
// error is rendered as JSON for API clients and as a page for browsers.
func (s *Server) renderErrors() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 {
			return
		}
		e := asError(c.Errors.Last().Err)
		attrs := []any{"status", e.Status, "msg", e.Msg, "request_id", RequestID(c)}
		if e.Err != nil {
			attrs = append(attrs, "err", e.Err)
		}
		if e.Status >= 500 {
			s.log.Error("request failed", attrs...)
		} else {
			s.log.Debug("request refused", attrs...)
		}
		if c.Writer.Written() {
			return
		}
		if wantsHTML(c.Request) && s.cfg.RenderHTMLError != nil {
			s.cfg.RenderHTMLError(c, e)
			return
		}
		if wantsHTML(c.Request) || strings.HasPrefix(c.GetHeader("Accept"), "text/plain") {
			c.String(e.Status, "%d %s: %s\n", e.Status, http.StatusText(e.Status), e.Msg)
			return
		}
		// The JSON shape is Connect's API error shape, so clients written
		// for Posit Connect (rsconnect-python, posit-sdk) understand it.
		c.JSON(e.Status, gin.H{"code": e.Code, "error": e.Msg, "payload": e.Payload})
	}
}

// wantsHTML is true for browsers: they list text/html in Accept ahead of
// JSON. API clients send application/json or */*.
func wantsHTML(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	html := strings.Index(accept, "text/html")
	if html < 0 {
		return false
	}
	js := strings.Index(accept, "application/json")
	return js < 0 || html < js
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry, name, version string) *metrics {
	constLabels := prometheus.Labels{"server": name}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atrium_http_requests_total", Help: "HTTP requests served, by route and status code.",
			ConstLabels: constLabels,
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "atrium_http_request_duration_seconds", Help: "Time to serve an HTTP request, by route.",
			ConstLabels: constLabels, Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atrium_http_requests_in_flight", Help: "HTTP requests being served now.",
			ConstLabels: constLabels,
		}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "atrium_build_info", Help: "Always 1; labels say which build and product this is.",
		ConstLabels: prometheus.Labels{"server": name, "version": version},
	})
	build.Set(1)
	reg.MustRegister(m.requests, m.duration, m.inflight, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		m.inflight.Inc()
		defer m.inflight.Dec()
		c.Next()
		// The route template, not the path, keeps label cardinality bounded.
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(c.Request.Method, route, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(c.Request.Method, route).Observe(time.Since(start).Seconds())
	}
}
