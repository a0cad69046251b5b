package platform_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/platform"
)

func TestPublicURL(t *testing.T) {
	cases := []struct {
		listen, public, want string
	}{
		{":3939", "", "http://localhost:3939"},
		{"0.0.0.0:3939", "", "http://localhost:3939"},
		{"[::]:3939", "", "http://localhost:3939"},
		{"127.0.0.1:4000", "", "http://127.0.0.1:4000"},
		{"[::1]:4000", "", "http://[::1]:4000"},
		{":3939", "https://connect.example.org/", "https://connect.example.org"},
	}
	for _, tc := range cases {
		cfg := config.Default()
		cfg.Connect.Listen, cfg.Connect.PublicURL = tc.listen, tc.public
		if got := platform.PublicURL(cfg, config.Connect); got != tc.want {
			t.Errorf("PublicURL(listen %q, public %q) = %q, want %q", tc.listen, tc.public, got, tc.want)
		}
	}
}

func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	cfg.Connect.Listen = "127.0.0.1:0"
	return cfg
}

// TestReadyzFollowsTheDatabase: /readyz is what a load balancer asks, so it
// must turn 503 when the database stops answering.
func TestReadyzFollowsTheDatabase(t *testing.T) {
	ctx := context.Background()
	b, err := platform.Open(ctx, testConfig(t), platform.Product{Name: config.Connect, Embedded: fstest.MapFS{"migrations/README.md": {}}}, platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	base := "http://" + b.HTTP.Addr().String()
	status := func() int {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(); got != 200 {
		t.Fatalf("readyz = %d with a working database", got)
	}
	b.DB.SQL().Close()
	if got := status(); got != 503 {
		t.Errorf("readyz = %d with a closed database, want 503", got)
	}
	cancel()
	<-done
}

// TestOpenFailureLeavesNothingRunning: a product that cannot open its
// database must not keep its port bound.
func TestOpenFailureLeavesNothingRunning(t *testing.T) {
	cfg := testConfig(t)
	bad := fstest.MapFS{"migrations/0001_broken.sql": {Data: []byte("CREATE TABLE (")}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = platform.Open(context.Background(), cfg, platform.Product{Name: config.Connect, Embedded: bad}, platform.Options{Listener: ln})
	if err == nil || !strings.Contains(err.Error(), "0001_broken.sql") {
		t.Fatalf("got %v, want an error naming the migration", err)
	}
	// The configured listener was handed over; Open must have closed it.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("port still bound after a failed Open")
	}
}

func TestUnknownProduct(t *testing.T) {
	if _, err := platform.Open(context.Background(), testConfig(t), platform.Product{Name: "rstudio"}, platform.Options{}); err == nil {
		t.Fatal("opened an unknown product")
	}
}

// TestOpenSweepsAbandonedUploads: temp files a crash left behind are
// removed at start, recent ones (a live upload) are kept.
func TestOpenSweepsAbandonedUploads(t *testing.T) {
	cfg := testConfig(t)
	tmp := filepath.Join(cfg.Shared.DataDir, "connect", "files", ".tmp")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(tmp, "old"), filepath.Join(tmp, "fresh")
	os.WriteFile(old, []byte("x"), 0o600)
	os.WriteFile(fresh, []byte("x"), 0o600)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	b, err := platform.Open(context.Background(), cfg, platform.Product{Name: config.Connect, Embedded: fstest.MapFS{"migrations/README.md": {}}}, platform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("abandoned upload still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a live upload was removed: %v", err)
	}
}
