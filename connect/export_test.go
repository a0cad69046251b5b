package connect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/atrium-suite/atrium/shared/auth"
)

// EnvVarsOf and CanViewOf expose the store methods the runtime uses to the
// handler tests.
func EnvVarsOf(s *Server, ctx context.Context, guid string) (map[string]string, error) {
	return s.st.EnvVars(ctx, guid)
}

func CanViewOf(s *Server, ctx context.Context, guid string, u auth.User) (bool, error) {
	return s.st.CanView(ctx, guid, u)
}

// FakePython lets the handler tests deploy Python content without
// interpreters, a package index or real processes: environments are
// directories holding a dist-info for every "name==version" line of the
// requirements (and version 1.0 of what Connect adds), and processes are
// fakeLauncher's in-process HTTP servers.
type FakePython struct {
	launcher  *fakeLauncher
	builds    atomic.Int64
	clobbered atomic.Int64
	mu        sync.Mutex
	gate      *buildGate
}

type buildGate struct {
	started chan string
	release chan struct{}
}

// Starts is how many processes were started.
func (f *FakePython) Starts() int { return f.launcher.count() }

// Builds is how many environments were built.
func (f *FakePython) Builds() int { return int(f.builds.Load()) }

// Clobbered is how many held builds found their environment's directory
// gone when released: removed while being built.
func (f *FakePython) Clobbered() int { return int(f.clobbered.Load()) }

// HoldNextBuild makes the next build stop half-way (its directory made,
// nothing installed) and send the environment's path on started, until
// release is called.
func (f *FakePython) HoldNextBuild() (started <-chan string, release func()) {
	g := &buildGate{started: make(chan string, 1), release: make(chan struct{})}
	f.mu.Lock()
	f.gate = g
	f.mu.Unlock()
	var once sync.Once
	return g.started, func() { once.Do(func() { close(g.release) }) }
}

// UseFakePython makes s build and run Python content as FakePython says,
// with interpreters of the given versions.
func UseFakePython(t interface{ Cleanup(func()) }, s *Server, versions ...string) *FakePython {
	f := &FakePython{}
	s.pyMu.Lock()
	s.pys = nil
	for _, v := range versions {
		s.pys = append(s.pys, interpreter{path: "/nonexistent/python" + v, version: v})
	}
	s.pyMu.Unlock()
	s.buildSteps = func(python, env, pyBin, index, reqPath string, hasReqs bool, extra []string) (string, [][]string) {
		f.builds.Add(1)
		f.mu.Lock()
		g := f.gate
		f.gate = nil
		f.mu.Unlock()
		os.MkdirAll(filepath.Join(env, "bin"), 0o755) // as uv venv does first
		if g != nil {
			g.started <- env
			<-g.release
			if _, err := os.Stat(filepath.Join(env, "bin")); err != nil {
				f.clobbered.Add(1)
			}
		}
		var pkgs [][2]string
		if data, err := os.ReadFile(reqPath); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if name, version, ok := strings.Cut(strings.TrimSpace(line), "=="); ok {
					pkgs = append(pkgs, [2]string{name, version})
				}
			}
		}
		for _, name := range extra {
			pkgs = append(pkgs, [2]string{name, "1.0"})
		}
		minor := strings.Join(strings.SplitN(filepath.Base(env), ".", 3)[:2], ".")
		site := filepath.Join(env, "lib", "python"+minor, "site-packages")
		for _, p := range pkgs {
			dist := filepath.Join(site, strings.ToLower(p[0])+"-"+p[1]+".dist-info")
			os.MkdirAll(dist, 0o755)
			os.WriteFile(filepath.Join(dist, "METADATA"), []byte("Metadata-Version: 2.1\nName: "+p[0]+"\nVersion: "+p[1]+"\n\nDescription\n"), 0o644)
		}
		os.MkdirAll(filepath.Join(env, "bin"), 0o755)
		return "fake", nil
	}
	fl := &fakeLauncher{hold: make(chan struct{})}
	f.launcher = fl
	s.rt.launcher = fl
	t.Cleanup(func() { close(fl.hold) })
	return f
}

// RunningProcesses is how many processes of content guid run.
func RunningProcesses(s *Server, guid string) int {
	n := 0
	for _, p := range s.rt.processes(guid) {
		if !p.Stopping {
			n++
		}
	}
	return n
}

// EnvsDir is where s keeps its Python environments.
func EnvsDir(s *Server) string { return s.envsDir }

// Eventually polls cond until it holds, failing the test after 10s (the
// internal tests' eventually).
var Eventually = eventually

// OnEnvLockWait has s call f when a build of its waits for another
// process's lock on environment key.
func OnEnvLockWait(s *Server, f func(key string)) { s.envLockWait = f }
