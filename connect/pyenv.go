package connect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/atrium-suite/atrium/connect/bundle"
)

// readyMarker is written into an environment once it is complete; an
// environment directory without it is a failed or interrupted build.
const readyMarker = ".atrium-ready"

// interpreter is a Python environments are built with.
type interpreter struct {
	path    string
	version string // "3.11.7"
}

// minor is the version's "3.11".
func (i interpreter) minor() string {
	parts := strings.SplitN(i.version, ".", 3)
	if len(parts) < 2 {
		return i.version
	}
	return parts[0] + "." + parts[1]
}

// pythons finds the interpreters environments can be built with: every
// python3 and python3.N on the server's PATH whose base interpreter the
// content user can run (a Python under root's home cannot serve content
// run unprivileged), one per version, in PATH order. The list is found
// once; a new interpreter needs a restart.
func (s *Server) pythons(ctx context.Context) ([]interpreter, error) {
	s.pyMu.Lock()
	defer s.pyMu.Unlock()
	if s.pys != nil {
		return s.pys, nil
	}
	acct, err := s.contentAccount()
	if err != nil {
		return nil, err
	}
	var found []interpreter
	var tried []string
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		names, _ := filepath.Glob(filepath.Join(dir, "python3*"))
		for _, path := range names {
			base := filepath.Base(path)
			if base != "python3" && !pythonMinorName.MatchString(base) {
				continue // python3-config, python3.11m, …
			}
			if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				continue
			}
			// A python3 on the PATH may be a virtualenv's or a shim; the
			// base interpreter is what environments link to.
			out, err := exec.CommandContext(ctx, path, "-c",
				"import sys; print('%d.%d.%d' % sys.version_info[:3]); print(getattr(sys, '_base_executable', '') or sys.executable)").Output()
			if err != nil {
				tried = append(tried, fmt.Sprintf("%s does not run (%v)", path, err))
				continue
			}
			version, exe, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			version = strings.TrimSpace(version)
			if exe = strings.TrimSpace(exe); exe == "" {
				exe = path
			}
			if seen[version] {
				continue
			}
			if acct != nil {
				if err := checkRunnable(exe, acct); err != nil {
					tried = append(tried, err.Error())
					continue
				}
			}
			seen[version] = true
			found = append(found, interpreter{path: exe, version: version})
		}
	}
	if len(found) == 0 {
		if len(tried) == 0 {
			return nil, failf("no python3 on the server's PATH: Python content cannot be deployed")
		}
		return nil, failf("no usable python3 on the server's PATH: %s", strings.Join(tried, "; "))
	}
	s.pys = found
	return found, nil
}

var pythonMinorName = regexp.MustCompile(`^python3\.[0-9]+$`)

// pickPython chooses the interpreter for a bundle that asks for version
// want (the manifest's python.version, e.g. "3.11.4"; may be empty), as
// Posit Connect does: the same major.minor when the server has it (the
// newest patch of it), otherwise the first interpreter found. The bundle
// runs with whatever is chosen; the deploy log says which.
func pickPython(all []interpreter, want string) interpreter {
	wantMinor := interpreter{version: want}.minor()
	var best *interpreter
	for i := range all {
		if want != "" && all[i].minor() == wantMinor && (best == nil || pythonLess(best.version, all[i].version)) {
			best = &all[i]
		}
	}
	if best != nil {
		return *best
	}
	return all[0]
}

// pythonLess compares dotted numeric versions.
func pythonLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, _ := strconv.Atoi(as[i])
		y, _ := strconv.Atoi(bs[i])
		if x != y {
			return x < y
		}
	}
	return len(as) < len(bs)
}

// requirementsFile is the bundle's package file (requirements.txt unless
// the manifest names another).
func requirementsFile(m bundle.Manifest) string {
	if m.Python != nil && m.Python.PackageManager != nil && m.Python.PackageManager.PackageFile != "" {
		return m.Python.PackageManager.PackageFile
	}
	return "requirements.txt"
}

// pyEnv is a Python environment under DATA_DIR/connect/envs.
type pyEnv struct {
	key     string // its directory's name: "{version}-{hash}"
	path    string
	version string // the interpreter's, "3.11.7"
	built   bool   // this call built it rather than finding it ready
}

// envReady reports whether the environment at path is complete.
func envReady(path string) bool {
	_, err := os.Stat(filepath.Join(path, readyMarker))
	return err == nil
}

// pythonEnv returns the virtualenv for the bundle extracted in dir,
// building it if no content has needed the same one before (or it was
// deleted since: a runtime cache delete, or by hand). Environments live in
// DATA_DIR/connect/envs/{key}, where key hashes the interpreter's version,
// the requirements and what Connect adds (uvicorn, gunicorn), so content of
// one mode with the same requirements shares one. Packages come from index
// (Package Manager's pypi repository), through uv; the build's output goes
// to out.
//
// It returns with the environment's read lock held: until release is
// called the environment is not removed (a cache delete takes the write
// lock), so what starts from it starts from a complete environment.
// Builds take the write lock, so one key is built once at a time.
func (s *Server) pythonEnv(ctx context.Context, m bundle.Manifest, dir string, out io.Writer, say func(string, ...any)) (env pyEnv, release func(), err error) {
	all, err := s.pythons(ctx)
	if err != nil {
		return env, nil, err
	}
	want := ""
	if m.Python != nil {
		want = m.Python.Version
	}
	py := pickPython(all, want)
	if want != "" && (interpreter{version: want}).minor() != py.minor() {
		say("The bundle asks for Python %s; this server has %s, so it runs with Python %s", want, pythonVersions(all), py.version)
	}
	reqPath := filepath.Join(dir, filepath.FromSlash(requirementsFile(m)))
	reqs, err := os.ReadFile(reqPath)
	if err != nil && !os.IsNotExist(err) {
		return env, nil, err
	}
	// The servers Connect runs the mode with (uvicorn, gunicorn) are part of
	// the environment, so they are part of its key.
	extra := extraPackages(m.Metadata.AppMode)
	h := sha256.New()
	fmt.Fprintf(h, "python %s\x00index %s\x00extra %s\x00", py.version, s.packageIndex, strings.Join(extra, " "))
	h.Write(reqs)
	key := py.version + "-" + hex.EncodeToString(h.Sum(nil))[:24]
	env = pyEnv{key: key, path: filepath.Join(s.envsDir, key), version: py.version}

	lock := s.envLock(key)
	for {
		lock.RLock()
		if envReady(env.path) {
			return env, lock.RUnlock, nil
		}
		lock.RUnlock()
		lock.Lock()
		if !envReady(env.path) {
			built, err := s.buildShared(ctx, py, env, dir, reqPath, len(reqs) > 0, extra, out, say)
			if err != nil {
				lock.Unlock()
				return pyEnv{}, nil, err
			}
			env.built = built
		}
		lock.Unlock()
		// Take the read lock again: a cache delete may have come in between,
		// and then the loop builds once more.
	}
}

// buildShared builds env unless another server sharing the data dir (HA)
// did while this one waited for the environment's file lock, which is held
// for the build: two servers building one environment into the same
// directory at once would each remove what the other installed. The
// caller holds the environment's write lock.
func (s *Server) buildShared(ctx context.Context, py interpreter, env pyEnv, dir, reqPath string, hasReqs bool, extra []string, out io.Writer, say func(string, ...any)) (built bool, err error) {
	unlock, err := s.lockEnvFile(ctx, env.key)
	if err != nil {
		return false, err
	}
	defer unlock()
	if envReady(env.path) {
		return false, nil
	}
	return true, s.buildEnv(ctx, py, env.path, dir, reqPath, hasReqs, extra, out, say)
}

// lockEnvFile takes environment key's lock across processes: an flock on
// DATA_DIR/connect/envs/.{key}.lock (left in place: removing a lock file
// others may be waiting on would let two holders in). It waits as long as
// ctx allows, polling, so that a cancelled deploy stops waiting.
func (s *Server) lockEnvFile(ctx context.Context, key string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.envsDir, "."+key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("environment lock: %w", err)
	}
	fd := int(f.Fd())
	for waited := false; ; waited = true {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(fd, syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("environment lock: %w", err)
		}
		if !waited && s.envLockWait != nil {
			s.envLockWait(key)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// buildEnv builds the environment at env from scratch; the caller holds
// its write lock.
func (s *Server) buildEnv(ctx context.Context, py interpreter, env, dir, reqPath string, hasReqs bool, extra []string, out io.Writer, say func(string, ...any)) error {
	say("Building Python %s environment %s with packages from %s", py.version, filepath.Base(env), s.packageIndex)
	if err := os.RemoveAll(env); err != nil {
		return err
	}
	pyBin := filepath.Join(env, "bin", "python")
	steps := envSteps
	if s.buildSteps != nil {
		steps = s.buildSteps
	}
	tool, cmds := steps(py.path, env, pyBin, s.packageIndex, reqPath, hasReqs, extra)
	for _, args := range cmds {
		say("$ %s %s", filepath.Base(args[0]), strings.Join(args[1:], " "))
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(buildEnviron(os.Environ()), "UV_PYTHON_DOWNLOADS=never", "UV_NO_CONFIG=1", "UV_LINK_MODE=copy", "NO_COLOR=1",
			"PIP_CONFIG_FILE=/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			os.RemoveAll(env)
			return failf("%s failed building the environment (%s): %v", tool, strings.Join(args[1:min(3, len(args))], " "), err)
		}
	}
	return os.WriteFile(filepath.Join(env, readyMarker), nil, 0o644)
}

// buildEnviron is the server's environment without the variables that
// would make uv or pip take packages from elsewhere than the index Connect
// names (the host's own index, extra indexes, local wheel directories):
// environments must come from Package Manager, the same on every server.
// Certificates and proxies stay.
func buildEnviron(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.TrimPrefix(strings.TrimPrefix(name, "PIP_"), "UV_") {
		case "INDEX_URL", "EXTRA_INDEX_URL", "FIND_LINKS", "NO_INDEX", "INDEX", "DEFAULT_INDEX":
			if name != strings.TrimPrefix(strings.TrimPrefix(name, "PIP_"), "UV_") {
				continue
			}
		}
		out = append(out, kv)
	}
	return out
}

// envSteps are the commands that build an environment: with uv when it is
// on the PATH (fast, and its cache is shared by every build), otherwise
// with the interpreter's own venv and pip. Connect's extra packages are
// installed after the bundle's, keeping a version the bundle pinned.
func envSteps(python, env, pyBin, index, reqPath string, hasReqs bool, extra []string) (string, [][]string) {
	if uv, err := exec.LookPath("uv"); err == nil {
		steps := [][]string{{uv, "venv", "--no-progress", "--python", python, env}}
		if hasReqs {
			steps = append(steps, []string{uv, "pip", "install", "--no-progress", "--python", pyBin, "--index-url", index, "-r", reqPath})
		}
		if len(extra) > 0 {
			steps = append(steps, append([]string{uv, "pip", "install", "--no-progress", "--python", pyBin, "--index-url", index}, extra...))
		}
		return "uv", steps
	}
	steps := [][]string{{python, "-m", "venv", env}}
	pip := []string{pyBin, "-m", "pip", "install", "--progress-bar", "off", "--index-url", index}
	if hasReqs {
		steps = append(steps, append(slices.Clone(pip), "-r", reqPath))
	}
	if len(extra) > 0 {
		steps = append(steps, append(slices.Clone(pip), extra...))
	}
	return "pip", steps
}

func pythonVersions(all []interpreter) string {
	vs := make([]string, len(all))
	for i, p := range all {
		vs[i] = p.version
	}
	return strings.Join(vs, ", ")
}

// envLock is the lock of environment key: builds and deletes take it for
// writing, starts of processes from the environment for reading.
func (s *Server) envLock(key string) *sync.RWMutex {
	s.pyMu.Lock()
	defer s.pyMu.Unlock()
	l, ok := s.envLocks[key]
	if !ok {
		l = &sync.RWMutex{}
		s.envLocks[key] = l
	}
	return l
}
