package httpx

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
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
		id := requestIDFor(c.GetHeader(RequestIDHeader))
		c.Set(requestIDKey, id)
		c.Header(RequestIDHeader, id)
		c.Next()
	}
}

// requestIDFor is the incoming id when it is sane, else a new one.
func requestIDFor(id string) string {
	if goodRequestID.MatchString(id) {
		return id
	}
	// An id only has to tell requests apart in the logs, not be
	// unguessable: math/rand/v2's generator (seeded by the runtime from
	// the system's entropy) costs no system call, crypto/rand one per
	// request on kernels without a vDSO getrandom.
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], rand.Uint64())
	return hex.EncodeToString(b[:])
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
		s.logRequest(c.Request.Context(), c.Request.Method, c.Request.URL.Path, c.Writer.Status(),
			c.Writer.Size(), time.Since(start), c.ClientIP(), RequestID(c))
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
		m.observe(c.Request.Method, route, c.Writer.Status(), time.Since(start))
	}
}

// observe counts one request served by the engine or the fast path.
func (m *metrics) observe(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}
