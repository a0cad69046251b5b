package e2e_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/testutil"
)

// repoRoot is the checkout this test runs in.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// atriumBinary builds cmd/atrium once per test run, as a user's `make
// build` does.
func atriumBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "atrium-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "atrium")
		cmd := exec.Command("go", "build", "-ldflags", "-X github.com/atrium-suite/atrium/shared/buildinfo.Version=e2e-test", "-o", binPath, "./cmd/atrium")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// suiteProc is a running `atrium` process.
type suiteProc struct {
	cmd    *exec.Cmd
	urls   map[string]string // display name → URL
	stderr *testutil.LockedBuffer
	done   chan error
}

// freePortsConfig is an atrium.toml putting every product on a free port.
const freePortsConfig = `
[connect]
listen = "127.0.0.1:0"
[workbench]
listen = "127.0.0.1:0"
[packagemanager]
listen = "127.0.0.1:0"
[identity]
listen = "127.0.0.1:0"
`

// startAtrium runs the binary with args and env, and waits (bounded) until
// it has printed a URL for each of want.
func startAtrium(t *testing.T, env []string, want []string, args ...string) *suiteProc {
	t.Helper()
	cmd := exec.Command(atriumBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	p := &suiteProc{cmd: cmd, urls: map[string]string{}, stderr: &testutil.LockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// SIGTERM first: atrium stops the content processes it started
		// (each in its own process group, which a SIGKILL of atrium alone
		// would leave running); SIGKILL only if it hangs.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		<-p.done
		if t.Failed() {
			t.Logf("atrium stderr:\n%s", p.stderr.String())
		}
	})
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			for _, name := range want {
				if rest, ok := strings.CutPrefix(line, name+" "); ok {
					p.urls[name] = strings.TrimSuffix(strings.TrimSpace(rest), "/")
				}
			}
			if len(p.urls) == len(want) {
				once.Do(func() { close(found) })
			}
		}
		io.Copy(io.Discard, out)
		p.done <- cmd.Wait()
	}()
	select {
	case <-found:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("atrium exited before serving: %v\n%s", err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("atrium printed no URLs within 60s\n%s", p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and returns the exit error (nil for exit 0).
func (p *suiteProc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("atrium did not exit within 60s of SIGTERM")
		return nil
	}
}

func get(t *testing.T, u, accept string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
