package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startPypiserver serves dir as an upstream simple index (a real,
// independent implementation) and returns its index URL and a stop func.
func startPypiserver(t *testing.T, tools, dir string) (string, func()) {
	t.Helper()
	port := freeLoopbackPort(t)
	cmd := exec.Command(filepath.Join(tools, "bin", "pypi-server"), "run", "-p", fmt.Sprint(port), "-i", "127.0.0.1",
		"--disable-fallback", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		cmd.Process.Kill()
		<-done
	}
	t.Cleanup(stop)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pypiserver did not come up: %v", err)
		}
		select {
		case <-done:
			t.Fatal("pypiserver exited")
		case <-time.After(100 * time.Millisecond): // poll interval, bounded by the deadline
		}
	}
	return base + "/simple/", stop
}

// TestPackageManagerMirror: the default pypi repository mirrors an
// upstream index taken from configuration; files are fetched once and
// then served locally, also after the upstream goes away.
func TestPackageManagerMirror(t *testing.T) {
	tools := pyTools(t)
	upstreamDir := t.TempDir()
	buildDists(t, tools, "atr-demo-1.0.0", upstreamDir)
	upstream, stopUpstream := startPypiserver(t, tools, upstreamDir)

	p, _ := suiteWithIdentity(t,
		"ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM="+upstream,
		// Ask upstream on every request, so the test sees what happens
		// when it is gone.
		"ATRIUM_PACKAGEMANAGER_MIRROR_REFRESH=0s")
	index := p.urls["Package Manager"] + "/pypi/latest/simple/"

	install := func() string {
		venv := newVenv(t)
		run(t, "", nil, filepath.Join(venv, "bin", "pip"), "install", "-q", "--no-cache-dir", "--index-url", index, "atr-demo")
		return run(t, "", nil, filepath.Join(venv, "bin", "python"), "-c", "import atrdemo; print(atrdemo.VERSION)")
	}
	if v := strings.TrimSpace(install()); v != "1.0.0" {
		t.Fatalf("installed %q through the mirror", v)
	}
	stopUpstream()
	if v := strings.TrimSpace(install()); v != "1.0.0" {
		t.Errorf("after upstream went away, installed %q", v)
	}
	// A project upstream never had is a clean 404, not an error page.
	resp, err := http.Get(index + "no-such-project/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown project: %d", resp.StatusCode)
	}
	if err := p.stop(t); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// TestPackageManagerRealIndex installs a real package with dependencies
// through the mirror of the index the host's pip uses. Opt-in
// (ATRIUM_TEST_REAL_INDEX=1): it depends on that index being reachable.
func TestPackageManagerRealIndex(t *testing.T) {
	if os.Getenv("ATRIUM_TEST_REAL_INDEX") == "" {
		t.Skip("set ATRIUM_TEST_REAL_INDEX=1 to install requests through the mirror of the host's index")
	}
	// Empty: the index the host's pip uses.
	p, _ := suiteWithIdentity(t, "ATRIUM_PACKAGEMANAGER_PYPI_UPSTREAM=")
	venv := newVenv(t)
	run(t, "", nil, filepath.Join(venv, "bin", "pip"), "install", "-q", "--no-cache-dir", "--index-url",
		p.urls["Package Manager"]+"/pypi/latest/simple/", "requests")
	run(t, "", nil, filepath.Join(venv, "bin", "python"), "-c", "import requests, urllib3, idna, certifi")
}
