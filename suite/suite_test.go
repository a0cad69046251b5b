package suite_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/suite"
)

// TestPortTakenFailsWholeSuite: if one product cannot bind, none is left
// running half a suite.
func TestPortTakenFailsWholeSuite(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	cfg.Connect.Listen = "127.0.0.1:0"
	cfg.PackageManager.Listen = "127.0.0.1:0"
	cfg.Workbench.Listen = taken.Addr().String()
	var out bytes.Buffer
	err = suite.Up(context.Background(), cfg, suite.Options{Out: &out})
	if err == nil || !strings.Contains(err.Error(), "workbench") {
		t.Fatalf("got %v, want a workbench listen error", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed URLs for a suite that did not start: %q", out.String())
	}
}

func TestServeUnknownProduct(t *testing.T) {
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	if err := suite.Serve(context.Background(), cfg, "rstudio", suite.Options{}); err == nil {
		t.Fatal("served an unknown product")
	}
}
