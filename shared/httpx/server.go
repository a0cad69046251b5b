// Package httpx is the HTTP server every Atrium product runs on.
//
// It gives each product the same behaviour so that they look and operate as
// one suite: a gin engine with request ids, structured request logs,
// panic recovery, body limits, one error type rendered by one middleware,
// the health endpoints (/__ping__, /healthz, /readyz), Prometheus /metrics,
// server timeouts, and a graceful shutdown that waits for in-flight requests.
// A product may also serve a prefix on a fast path that reads requests
// itself instead of net/http (HandleFast, front.go).
package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func init() {
	// gin's debug mode prints routes to stdout and warns at start; the
	// suite's own request log replaces both.
	gin.SetMode(gin.ReleaseMode)
}

// Config configures a Server. Name and Addr or Listener are required.
type Config struct {
	// Name is the product ("connect", …); it labels logs and metrics.
	Name string
	// Version is reported by /metrics (atrium_build_info).
	Version string
	// Addr is the host:port to listen on, used when Listener is nil.
	Addr string
	// Listener, when set, is served instead of listening on Addr.
	Listener net.Listener
	// Logger receives request logs and errors; nil discards them.
	Logger *slog.Logger
	// MaxBodyBytes caps each request body (default 32 MiB).
	MaxBodyBytes int64
	// ReadHeaderTimeout, IdleTimeout and ShutdownTimeout default to 10s,
	// 120s and 30s.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	// TrustedProxies are the addresses (or CIDRs) of reverse proxies whose
	// X-Forwarded-For is believed; nil trusts none.
	TrustedProxies []string
	// Ready reports whether the server can do its work (its database
	// answers, …); /readyz calls it. Nil means always ready.
	Ready func(ctx context.Context) error
	// RenderHTMLError, when set, renders errors for browsers; otherwise
	// a plain-text body is used.
	RenderHTMLError func(c *gin.Context, e *Error)
}

// Server is one product's HTTP server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	engine *gin.Engine
	srv    *http.Server
	ln     net.Listener
	reg    *prometheus.Registry
	// metrics are the engine's and the fast path's (HandleFast).
	metrics *metrics
	// front serves the fast routes, when any are registered.
	front *front
}

// New validates cfg, binds the listener and builds the engine with the
// standard middleware and endpoints. Routes are added through Engine()
// before Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("httpx: Name is required")
	}
	if cfg.Addr == "" && cfg.Listener == nil {
		return nil, errors.New("httpx: Addr or Listener is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 32 << 20
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln := cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
		}
	}
	s := &Server{cfg: cfg, log: log, ln: ln, reg: prometheus.NewRegistry()}
	s.engine = s.buildEngine()
	s.srv = &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Engine is where products add their routes.
func (s *Server) Engine() *gin.Engine { return s.engine }

// Registry is the server's Prometheus registry, for product metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Addr is the address actually bound (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx is done, then shuts down gracefully: it stops
// accepting, waits up to ShutdownTimeout for in-flight requests, and only
// then returns. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	f := s.front
	if f == nil {
		go func() { errc <- s.srv.Serve(s.ln) }()
	} else {
		// The front accepts every connection and hands net/http the ones
		// it does not serve itself.
		f.ctx = context.WithoutCancel(ctx)
		f.handoff = newConnQueue(s.ln.Addr())
		go func() {
			if err := f.serve(s.ln); err != nil {
				errc <- err
			}
		}()
		go func() { errc <- s.srv.Serve(f.handoff) }()
	}
	s.log.Info("listening", "addr", s.ln.Addr().String())
	select {
	case err := <-errc:
		// Serve only returns early on a listener failure.
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	var ferr error
	fdone := make(chan struct{})
	if f != nil {
		f.closing.Store(true)
		s.ln.Close()
		go func() { ferr = f.shutdown(sctx); close(fdone) }()
	} else {
		close(fdone)
	}
	// Serve returns ErrServerClosed as soon as Shutdown starts; Shutdown
	// itself returns when in-flight requests have finished, so it is the
	// one we wait for.
	err := s.srv.Shutdown(sctx)
	<-fdone
	<-errc
	if err == nil {
		err = ferr
	}
	if err != nil {
		s.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// Close stops the server at once (for failed start-ups and tests).
func (s *Server) Close() error {
	if s.front != nil {
		s.ln.Close()
		s.front.close()
	}
	return s.srv.Close()
}

func (s *Server) buildEngine() *gin.Engine {
	e := gin.New()
	// gin trusts X-Forwarded-For from anyone by default, which would let a
	// client choose its own address for logs and rate limits. Trust only
	// the configured proxies (none by default).
	if err := e.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		s.log.Warn("trusted proxies", "err", err)
	}
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	s.metrics = newMetrics(s.reg, s.cfg.Name, s.cfg.Version)
	e.Use(requestID(), s.accessLog(), s.metrics.middleware(), s.renderErrors(), s.recoverPanic(), bodyLimit(s.cfg.MaxBodyBytes))
	e.NoRoute(func(c *gin.Context) {
		c.Error(NotFound("no page at %s", c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		c.Error(Errorf(http.StatusMethodNotAllowed, "method %s is not allowed here", c.Request.Method))
	})
	// Posit Connect clients probe /__ping__ and expect an empty JSON object.
	e.GET("/__ping__", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{}) })
	e.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})))
	return e
}

func (s *Server) readyz(c *gin.Context) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.log.Warn("not ready", "err", err)
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

func (s *Server) recoverPanic() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				c.Error(Internal(fmt.Errorf("panic: %v", r)))
				c.Abort()
			}
		}()
		c.Next()
	}
}

func bodyLimit(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > n {
			c.Error(&Error{Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("request body is larger than the limit of %d bytes", n)})
			c.Abort()
			return
		}
		// A request without a body keeps http.NoBody, so the proxy can
		// tell it has none and take its direct path.
		if c.Request.Body != nil && c.Request.Body != http.NoBody {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		}
		c.Next()
	}
}
