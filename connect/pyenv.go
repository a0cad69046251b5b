package connect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/atrium-suite/atrium/connect/bundle"
)

// readyMarker is written into an environment once it is complete; an
// environment directory without it is a failed or interrupted build.
const readyMarker = ".atrium-ready"

// interpreter is the Python environments are built with.
type interpreter struct {
	path    string
	version string // "3.11.7"
}

// python finds the interpreter environments are built with: the first
// python3 on the server's PATH whose base interpreter the content user can
// run (a python3 under root's home cannot serve content run unprivileged).
// Connect's bundles name the publisher's Python version; this slice builds
// every environment with that one interpreter and keys environments by
// its real version, so a new interpreter gets new environments.
func (s *Server) python(ctx context.Context) (interpreter, error) {
	s.pyMu.Lock()
	defer s.pyMu.Unlock()
	if s.py.path != "" {
		return s.py, nil
	}
	acct, err := s.contentAccount()
	if err != nil {
		return interpreter{}, err
	}
	var tried []string
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		path := filepath.Join(dir, "python3")
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		// A python3 on the PATH may be a virtualenv's or a shim; the base
		// interpreter is what environments link to.
		out, err := exec.CommandContext(ctx, path, "-c",
			"import sys; print('%d.%d.%d' % sys.version_info[:3]); print(getattr(sys, '_base_executable', '') or sys.executable)").Output()
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s does not run (%v)", path, err))
			continue
		}
		version, base, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if base = strings.TrimSpace(base); base == "" {
			base = path
		}
		if acct != nil {
			if err := checkRunnable(base, acct); err != nil {
				tried = append(tried, err.Error())
				continue
			}
		}
		s.py = interpreter{path: base, version: strings.TrimSpace(version)}
		return s.py, nil
	}
	if len(tried) == 0 {
		return interpreter{}, failf("no python3 on the server's PATH: Python content cannot be deployed")
	}
	return interpreter{}, failf("no usable python3 on the server's PATH: %s", strings.Join(tried, "; "))
}

// requirementsFile is the bundle's package file (requirements.txt unless
// the manifest names another).
func requirementsFile(m bundle.Manifest) string {
	if m.Python != nil && m.Python.PackageManager != nil && m.Python.PackageManager.PackageFile != "" {
		return m.Python.PackageManager.PackageFile
	}
	return "requirements.txt"
}

// pythonEnv returns the virtualenv for the bundle extracted in dir,
// building it if no content has needed the same one before. Environments
// live in DATA_DIR/connect/envs/{key}, where key hashes the interpreter's
// version, the requirements and what Connect adds (uvicorn, gunicorn),
// so content of one mode with the same requirements shares one. Packages
// come from index (Package Manager's pypi repository), through uv; the
// build's output goes to out.
func (s *Server) pythonEnv(ctx context.Context, m bundle.Manifest, dir string, out io.Writer, say func(string, ...any)) (string, error) {
	py, err := s.python(ctx)
	if err != nil {
		return "", err
	}
	reqPath := filepath.Join(dir, filepath.FromSlash(requirementsFile(m)))
	reqs, err := os.ReadFile(reqPath)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	// The servers Connect runs the mode with (uvicorn, gunicorn) are part of
	// the environment, so they are part of its key.
	extra := extraPackages(m.Metadata.AppMode)
	h := sha256.New()
	fmt.Fprintf(h, "python %s\x00index %s\x00extra %s\x00", py.version, s.packageIndex, strings.Join(extra, " "))
	h.Write(reqs)
	key := py.version + "-" + hex.EncodeToString(h.Sum(nil))[:24]
	env := filepath.Join(s.envsDir, key)

	lock := s.envLock(key)
	lock.Lock()
	defer lock.Unlock()
	if _, err := os.Stat(filepath.Join(env, readyMarker)); err == nil {
		say("Reusing Python %s environment %s", py.version, key)
		return env, nil
	}
	uv, err := exec.LookPath("uv")
	if err != nil {
		return "", failf("uv is not on the server's PATH; it is needed to build Python environments")
	}
	say("Building Python %s environment %s with packages from %s", py.version, key, s.packageIndex)
	if err := os.RemoveAll(env); err != nil {
		return "", err
	}
	run := func(args ...string) error {
		say("$ uv %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, uv, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "UV_PYTHON_DOWNLOADS=never", "UV_NO_CONFIG=1", "UV_LINK_MODE=copy", "NO_COLOR=1")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return failf("uv %s failed: %v", args[0]+" "+args[1], err)
		}
		return nil
	}
	pyBin := filepath.Join(env, "bin", "python")
	steps := [][]string{{"venv", "--no-progress", "--python", py.path, env}}
	if len(reqs) > 0 {
		steps = append(steps, []string{"pip", "install", "--no-progress", "--python", pyBin, "--index-url", s.packageIndex, "-r", reqPath})
	}
	if len(extra) > 0 {
		// Connect runs these modes with its own server; install it next
		// to the bundle's packages (keeping a version they pinned).
		steps = append(steps, append([]string{"pip", "install", "--no-progress", "--python", pyBin, "--index-url", s.packageIndex}, extra...))
	}
	for _, args := range steps {
		if err := run(args...); err != nil {
			os.RemoveAll(env)
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(env, readyMarker), nil, 0o644); err != nil {
		return "", err
	}
	return env, nil
}

func (s *Server) envLock(key string) *sync.Mutex {
	s.pyMu.Lock()
	defer s.pyMu.Unlock()
	l, ok := s.envLocks[key]
	if !ok {
		l = &sync.Mutex{}
		s.envLocks[key] = l
	}
	return l
}
