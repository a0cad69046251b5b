package httpx_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/httpx"
)

// start runs a Server on a random port until the test ends.
func start(t *testing.T, cfg httpx.Config, routes func(*gin.Engine)) string {
	t.Helper()
	cfg.Name = "test"
	cfg.Addr = "127.0.0.1:0"
	s, err := httpx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if routes != nil {
		routes(s.Engine())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

func do(t *testing.T, method, url, accept string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestEndpointsAndErrors(t *testing.T) {
	ready := errors.New("database is down")
	readyErr := &ready
	base := start(t, httpx.Config{
		MaxBodyBytes: 10,
		Ready: func(context.Context) error {
			if *readyErr != nil {
				return *readyErr
			}
			return nil
		},
		RenderHTMLError: func(c *gin.Context, e *httpx.Error) {
			c.Data(e.Status, "text/html", []byte("<h1>"+e.Msg+"</h1>"))
		},
	}, func(e *gin.Engine) {
		e.GET("/teapot", func(c *gin.Context) {
			c.Error(&httpx.Error{Status: 418, Code: 7, Msg: "short and stout", Err: errors.New("secret cause")})
		})
		e.GET("/boom", func(c *gin.Context) { panic("kaboom") })
		e.GET("/plain-error", func(c *gin.Context) { c.Error(errors.New("db password is hunter2")) })
		e.POST("/echo", func(c *gin.Context) {
			b, err := io.ReadAll(c.Request.Body)
			if err != nil {
				c.Error(err)
				return
			}
			c.String(200, "%s", b)
		})
	})

	cases := []struct {
		name, method, path, accept string
		body                       io.Reader
		status                     int
		contains, absent           string
	}{
		{"ping", "GET", "/__ping__", "", nil, 200, "{}", ""},
		{"healthz", "GET", "/healthz", "", nil, 200, "ok", ""},
		{"not ready", "GET", "/readyz", "", nil, 503, "database is down", ""},
		{"json error shape", "GET", "/teapot", "application/json", nil, 418, `{"code":7,"error":"short and stout","payload":null}`, "secret"},
		{"browser error page", "GET", "/teapot", "text/html,application/xhtml+xml", nil, 418, "<h1>short and stout</h1>", "secret"},
		{"panic is a 500", "GET", "/boom", "", nil, 500, "internal server error", "kaboom"},
		{"unknown error hides cause", "GET", "/plain-error", "", nil, 500, "internal server error", "hunter2"},
		{"no route", "GET", "/nope", "", nil, 404, "no page at /nope", ""},
		{"wrong method", "DELETE", "/healthz", "", nil, 405, "not allowed", ""},
		{"body within limit", "POST", "/echo", "", strings.NewReader("0123456789"), 200, "0123456789", ""},
		{"declared body over limit", "POST", "/echo", "", strings.NewReader("0123456789X"), 413, "limit of 10 bytes", ""},
		{"streamed body over limit", "POST", "/echo", "", io.MultiReader(strings.NewReader("01234"), strings.NewReader("56789XYZ")), 413, "limit of 10 bytes", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, base+tc.path, tc.accept, tc.body)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body %q does not contain %q", body, tc.contains)
			}
			if tc.absent != "" && strings.Contains(body, tc.absent) {
				t.Errorf("body %q leaks %q", body, tc.absent)
			}
			if resp.Header.Get(httpx.RequestIDHeader) == "" {
				t.Error("no request id header")
			}
		})
	}

	*readyErr = nil
	if resp, body := do(t, "GET", base+"/readyz", "", nil); resp.StatusCode != 200 {
		t.Errorf("readyz after recovery: %d %s", resp.StatusCode, body)
	}
	_, metrics := do(t, "GET", base+"/metrics", "", nil)
	for _, want := range []string{
		`atrium_http_requests_total{code="418",method="GET",route="/teapot",server="test"} 2`,
		`atrium_http_requests_total{code="404",method="GET",route="unmatched",server="test"} 1`,
		`atrium_build_info{server="test",version=""} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestRequestIDKeptOrMinted(t *testing.T) {
	base := start(t, httpx.Config{}, nil)
	req, _ := http.NewRequest("GET", base+"/healthz", nil)
	req.Header.Set(httpx.RequestIDHeader, "from-the-proxy-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(httpx.RequestIDHeader); got != "from-the-proxy-42" {
		t.Errorf("kept id: got %q", got)
	}
	req.Header.Set(httpx.RequestIDHeader, "bad id\twith spaces")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	minted := resp.Header.Get(httpx.RequestIDHeader)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(minted) {
		t.Errorf("minted id: got %q, want 16 hex digits", minted)
	}
	// Each request gets its own.
	resp, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if again := resp.Header.Get(httpx.RequestIDHeader); again == minted || len(again) != 16 {
		t.Errorf("second minted id %q (first %q)", again, minted)
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	s, err := httpx.New(httpx.Config{Name: "test", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	s.Engine().GET("/slow", func(c *gin.Context) {
		close(entered)
		<-release
		c.String(200, "finished")
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr().String() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
		// Still waiting, as it should: this bounds a negative, not a wait.
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Errorf("in-flight request got %q", body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := http.Get("http://" + s.Addr().String() + "/healthz"); err == nil {
		t.Error("server still accepts after shutdown")
	}
}

// TestSIGTERMDuringSlowRequest runs this test binary again as a server
// process (the helper below) and sends it SIGTERM while a slow request is
// in flight: the request must finish and the process must exit 0.
func TestSIGTERMDuringSlowRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServer$")
	cmd.Env = append(os.Environ(), "ATRIUM_HTTPX_HELPER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := bufio.NewScanner(out)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("helper exited early: %v", lines.Err())
		}
		return lines.Text()
	}
	addr := strings.TrimPrefix(next(), "addr ")
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	if l := next(); l != "slow started" {
		t.Fatalf("helper said %q", l)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if body := <-got; body != "200 slow done" {
		t.Errorf("slow request got %q", body)
	}
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Errorf("helper exit: %v, want 0", err)
	}
}

// TestHelperServer is the server process for TestSIGTERMDuringSlowRequest;
// it does nothing in a normal run. It wires signals the way cmd/atrium does.
func TestHelperServer(t *testing.T) {
	if os.Getenv("ATRIUM_HTTPX_HELPER") != "1" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	s, err := httpx.New(httpx.Config{Name: "helper", Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	s.Engine().GET("/slow", func(c *gin.Context) {
		fmt.Println("slow started")
		// The slowness under test: the request is still running when the
		// signal arrives.
		time.Sleep(500 * time.Millisecond)
		c.String(200, "slow done")
	})
	fmt.Println("addr", s.Addr())
	if err := s.Serve(ctx); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func TestRequestIDInLog(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	base := start(t, httpx.Config{Logger: log}, func(e *gin.Engine) {
		e.GET("/x", func(c *gin.Context) { c.String(200, "x") })
	})
	req, _ := http.NewRequest("GET", base+"/x", nil)
	req.Header.Set(httpx.RequestIDHeader, "trace-me-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "request_id=trace-me-7") {
		t.Errorf("log lacks the request id:\n%s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
