package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lines is an Output that hands each line to the test as it arrives.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan string
}

func newLines() *lines { return &lines{ch: make(chan string, 100)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	select {
	case l.ch <- string(p):
	default:
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// next waits for a line starting with prefix and returns the rest of it.
func (l *lines) next(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-l.ch:
			if rest, ok := strings.CutPrefix(s, prefix); ok {
				return strings.TrimSpace(rest)
			}
		case <-deadline:
			t.Fatalf("no line %q in output %q", prefix, l.String())
		}
	}
}

func waitDone(t *testing.T, j Job) {
	t.Helper()
	select {
	case <-j.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("job %s did not finish", j.ID())
	}
}

// gone polls /proc until pid has exited (a zombie counts: it runs nothing
// and waits only for whoever reaps orphans in this container).
func gone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err == nil {
			// The state follows the parenthesised command name.
			if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive: %s", pid, b)
		}
		<-tick.C
	}
}

func startCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no name", Spec{Command: []string{"true"}}, "no name"},
		{"no command", Spec{Name: "x"}, "no command"},
		{"empty argv0", Spec{Name: "x", Command: []string{""}}, "no command"},
		{"port", Spec{Name: "x", Command: []string{"true"}, Port: 70000}, "out of range"},
		{"timeout", Spec{Name: "x", Command: []string{"true"}, StartTimeout: -1}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := (&Local{}).Start(t.Context(), tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLocalExitAndOutput(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		code     int
		wantErr  bool
		contains []string
	}{
		{"success", `echo out; echo err >&2`, 0, false, []string{"out\n", "err\n"}},
		{"exit code", `echo failing; exit 3`, 3, true, []string{"failing\n"}},
		{"signal", `kill -9 $$`, -1, true, nil},
		{"partial last line", `printf 'no newline'`, 0, false, []string{"no newline"}},
		{"order kept", `echo 1; echo 2 >&2; echo 3`, 0, false, []string{"1\n2\n3\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newLines()
			j, err := (&Local{}).Start(startCtx(t), Spec{
				Name: "t", Command: []string{"sh", "-c", tc.script}, Env: os.Environ(), Output: out,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = j.Wait()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Wait = %v, want error %v", err, tc.wantErr)
			}
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Errorf("Wait error %v does not wrap *exec.ExitError", err)
			}
			if got := j.ExitCode(); got != tc.code {
				t.Errorf("ExitCode = %d, want %d", got, tc.code)
			}
			for _, s := range tc.contains {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output %q lacks %q", out.String(), s)
				}
			}
		})
	}
}

func TestLocalEnvironment(t *testing.T) {
	t.Setenv("ATRIUM_LAUNCHER_SECRET", "leak")
	bin := t.TempDir()
	tool := filepath.Join(bin, "atrium-test-tool")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\necho tool ran in $(pwd) with FOO=$FOO secret=$ATRIUM_LAUNCHER_SECRET\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		env     []string
		want    string
		wantErr error
	}{
		{"job PATH, no inheritance", []string{"PATH=/nonexistent:" + bin + ":/usr/bin:/bin", "FOO=bar"},
			"tool ran in " + dir + " with FOO=bar secret=\n", nil},
		{"last PATH wins", []string{"PATH=" + bin, "PATH=/usr/bin:/bin"}, "", exec.ErrNotFound},
		{"relative PATH entries skipped", []string{"PATH=.:" + filepath.Base(bin)}, "", exec.ErrNotFound},
		{"no PATH", nil, "", exec.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newLines()
			j, err := (&Local{}).Start(startCtx(t), Spec{
				Name: "t", Command: []string{"atrium-test-tool"}, Dir: dir, Env: tc.env, Output: out,
			})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Start = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Wait(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("output %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestLocalPortWait(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	out := newLines()
	j, err := (&Local{}).Start(startCtx(t), Spec{
		Name:         "http.server",
		Command:      []string{"python3", "-m", "http.server", strconv.Itoa(port), "--bind", "127.0.0.1"},
		Dir:          t.TempDir(),
		Env:          os.Environ(),
		Port:         port,
		StartTimeout: 20 * time.Second,
		Output:       out,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Start returned, so the port must answer now, without retries.
	res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("status %d", res.StatusCode)
	}
	if j.ExitCode() != -1 {
		t.Errorf("ExitCode while running = %d, want -1", j.ExitCode())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := j.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, j)
	if !strings.Contains(out.String(), `"GET / HTTP/1.1" 200`) {
		t.Errorf("access log not captured: %q", out.String())
	}
	if err := j.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestLocalPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = (&Local{}).Start(startCtx(t), Spec{
		Name: "t", Command: []string{"sleep", "1000"}, Env: os.Environ(), Port: l.Addr().(*net.TCPAddr).Port,
	})
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("Start = %v, want ErrPortInUse", err)
	}
}

func TestLocalStopKillsProcessTree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		grace  time.Duration
	}{
		// sh and its background child both die of SIGTERM.
		{"sigterm", `sleep 1000 & echo child=$!; wait`, 10 * time.Second},
		// Both ignore SIGTERM (ignored signals survive exec), so Stop has
		// to escalate to SIGKILL when ctx runs out.
		{"sigkill after deadline", `trap '' TERM; sleep 1000 & echo child=$!; wait; wait`, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newLines()
			j, err := (&Local{}).Start(startCtx(t), Spec{
				Name: "tree", Command: []string{"sh", "-c", tc.script}, Env: os.Environ(), Output: out,
			})
			if err != nil {
				t.Fatal(err)
			}
			child, err := strconv.Atoi(out.next(t, "child="))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), tc.grace)
			defer cancel()
			if err := j.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case <-j.Done():
			default:
				t.Fatal("Stop returned before the job was done")
			}
			if j.Wait() == nil {
				t.Error("Wait = nil for a stopped job")
			}
			gone(t, j.(*LocalJob).Pid())
			gone(t, child)
		})
	}
}

func TestLocalExitKillsLeftovers(t *testing.T) {
	out := newLines()
	j, err := (&Local{}).Start(startCtx(t), Spec{
		Name: "t", Command: []string{"sh", "-c", `sleep 1000 & echo child=$!`}, Env: os.Environ(), Output: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(out.next(t, "child="))
	waitDone(t, j)
	if j.ExitCode() != 0 {
		t.Errorf("ExitCode = %d", j.ExitCode())
	}
	gone(t, child)
}

func TestLocalStartFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  string
		timeout time.Duration
		ctx     time.Duration
		wantErr error
		want    []string
	}{
		{"exits early", `echo Traceback; echo "ModuleNotFoundError: No module named 'app'" >&2; exit 1`,
			time.Minute, time.Minute, ErrExited, []string{"code 1", "Traceback", "ModuleNotFoundError: No module named 'app'"}},
		{"never listens", `echo pid=$$; echo loading; exec sleep 1000`,
			300 * time.Millisecond, time.Minute, ErrStartTimeout, []string{"loading", "killed"}},
		{"context ends", `echo pid=$$; exec sleep 1000`,
			time.Minute, 300 * time.Millisecond, context.DeadlineExceeded, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), tc.ctx)
			defer cancel()
			out := newLines()
			j, err := (&Local{}).Start(ctx, Spec{
				Name: "app", Command: []string{"sh", "-c", tc.script}, Env: os.Environ(),
				Port: port, StartTimeout: tc.timeout, Output: out,
			})
			if j != nil {
				t.Fatal("Start returned a job with an error")
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Start = %v, want %v", err, tc.wantErr)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if strings.Contains(tc.script, "pid=") {
				pid, _ := strconv.Atoi(out.next(t, "pid="))
				gone(t, pid)
			}
		})
	}
}

func TestLocalUser(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name    string
		user    string
		want    string // id -u output; empty when Start must fail
		wantErr string
	}{
		{"unknown user", "atrium-no-such-user", "", "unknown user"},
		{"nobody", "nobody", map[bool]string{true: nobody.Uid, false: ""}[root], "needs root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newLines()
			j, err := (&Local{}).Start(startCtx(t), Spec{
				Name: "t", Command: []string{"sh", "-c", "id -u; id -G"}, Dir: "/", Env: os.Environ(), User: tc.user, Output: out,
			})
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Start = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Wait(); err != nil {
				t.Fatalf("%v: %s", err, out.String())
			}
			got := strings.Fields(out.String())
			if len(got) < 2 || got[0] != tc.want {
				t.Fatalf("id output %q, want uid %s", out.String(), tc.want)
			}
			if slices.Contains(got[1:], "0") {
				t.Errorf("job kept root's group: %q", out.String())
			}
		})
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("port %d is not free: %v", p, err)
	}
	l.Close()
}
