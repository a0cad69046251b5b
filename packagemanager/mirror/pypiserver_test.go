//go:build unix

package mirror_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/packagemanager/mirror"
	"github.com/atrium-suite/atrium/shared/storage"
	"github.com/atrium-suite/atrium/shared/testutil"
)

// pypiserverVersion is pinned so the test exercises a known HTML dialect.
const pypiserverVersion = "2.4.2"

// skipOrFail skips locally but fails under CI, where the real-upstream test
// must run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// pypiserverVenv returns a venv with pypiserver and setuptools, made by
// scripts/venv.sh in the cache outside the repository and reused.
func pypiserverVenv(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../scripts/venv.sh", "pypiserver-test", "pypiserver=="+pypiserverVersion, "setuptools>=70.1").Output()
	if err != nil {
		skipOrFail(t, "cannot install pypiserver: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// buildWheel builds testdata/projects/<name> into dist with pip, from a
// copy, because setuptools writes build/ and *.egg-info next to the source.
func buildWheel(t *testing.T, venv, name, dist string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(src, os.DirFS(filepath.Join("testdata", "projects", name))); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), "-m", "pip", "wheel",
		"--no-deps", "--no-build-isolation", "--no-index", "--quiet", "-w", dist, src)
	cmd.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pip wheel %s: %v\n%s", name, err, out)
	}
}

type pypiserver struct {
	url    string
	cmd    *exec.Cmd
	exited chan struct{}
	log    *testutil.LockedBuffer
}

// stop kills the server and waits for it to exit.
func (p *pypiserver) stop() {
	p.cmd.Process.Kill()
	<-p.exited
}

// startPypiserver runs "pypi-server run" on a free loopback port and waits
// until /health answers. The port is found by binding :0 and releasing it,
// so another process may take it first; that shows as an early exit and
// is retried on a new port.
func startPypiserver(t *testing.T, venv, packages string) *pypiserver {
	t.Helper()
	var lastLog string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()

		p := &pypiserver{url: "http://127.0.0.1:" + strconv.Itoa(port), exited: make(chan struct{}), log: &testutil.LockedBuffer{}}
		// --disable-fallback: unknown projects must 404 instead of
		// redirecting to a public index.
		p.cmd = exec.Command(filepath.Join(venv, "bin", "pypi-server"), "run",
			"-p", strconv.Itoa(port), "-i", "127.0.0.1", "--disable-fallback", packages)
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { p.cmd.Wait(); close(p.exited) }()
		t.Cleanup(p.stop)

		if waitHealthy(p, 30*time.Second) {
			return p
		}
		p.stop()
		lastLog = p.log.String()
	}
	t.Fatalf("pypi-server did not come up:\n%s", lastLog)
	return nil
}

func waitHealthy(p *pypiserver, timeout time.Duration) bool {
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := http.Get(p.url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-p.exited:
			return false
		case <-deadline:
			return false
		case <-tick.C:
		}
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestPypiserver mirrors from a real pypiserver, then stops it and checks
// that fetching fails fast with ErrUnreachable while downloaded blobs stay.
func TestPypiserver(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real pypiserver")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		skipOrFail(t, "python3 not found: %v", err)
	}
	venv := pypiserverVenv(t)
	dist := t.TempDir()
	buildWheel(t, venv, "tiny-a", dist)
	buildWheel(t, venv, "tiny-b", dist)
	srv := startPypiserver(t, venv, dist)

	f := &mirror.Fetcher{
		Upstream: mirror.Upstream{BaseURL: srv.url + "/simple", Timeout: 10 * time.Second},
		Store:    newStore(t),
	}
	ctx := t.Context()
	wheels := map[string]string{ // project as asked → wheel file name
		"Atrium_Tiny.A": "atrium_tiny_a-1.0-py3-none-any.whl",
		"atrium-tiny-b": "atrium_tiny_b-2.0-py3-none-any.whl",
	}
	var downloaded []storage.Blob
	var files []mirror.File
	for project, wheel := range wheels {
		p, err := f.FetchProject(ctx, project)
		if err != nil {
			t.Fatalf("FetchProject(%q): %v\npypi-server log:\n%s", project, err, srv.log.String())
		}
		if len(p.Files) != 1 {
			t.Fatalf("FetchProject(%q) files = %+v, want one", project, p.Files)
		}
		file := p.Files[0]
		wantSHA := fileSHA256(t, filepath.Join(dist, wheel))
		if file.Filename != wheel || file.SHA256 != wantSHA {
			t.Fatalf("file = %+v, want %s with sha256 %s", file, wheel, wantSHA)
		}
		b, err := f.Download(ctx, file)
		if err != nil {
			t.Fatalf("Download(%s): %v", wheel, err)
		}
		if b.Digest != "sha256:"+wantSHA {
			t.Fatalf("blob digest = %s, want %s", b.Digest, wantSHA)
		}
		downloaded = append(downloaded, b)
		files = append(files, file)
	}
	if _, err := f.FetchProject(ctx, "no-such-project"); !errors.Is(err, mirror.ErrNotFound) {
		t.Fatalf("FetchProject(no-such-project) = %v, want ErrNotFound", err)
	}

	srv.stop()
	start := time.Now()
	_, err := f.FetchProject(ctx, "atrium-tiny-a")
	if !errors.Is(err, mirror.ErrUnreachable) {
		t.Fatalf("FetchProject after stop = %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v; a stopped upstream must fail fast", d)
	}
	t.Logf("upstream down: %v", err)
	for i, b := range downloaded {
		if _, err := f.Store.Stat(b.Digest); err != nil {
			t.Errorf("blob %s gone after upstream stopped: %v", b.Digest, err)
		}
		// Served from the store: no request, so no error with upstream down.
		if got, err := f.Download(ctx, files[i]); err != nil || got != b {
			t.Errorf("Download from store with upstream down = %+v, %v", got, err)
		}
	}
}
