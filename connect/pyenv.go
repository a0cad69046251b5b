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
	"slices"
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
	say("Building Python %s environment %s with packages from %s", py.version, key, s.packageIndex)
	if err := os.RemoveAll(env); err != nil {
		return "", err
	}
	pyBin := filepath.Join(env, "bin", "python")
	tool, steps := envSteps(py.path, env, pyBin, s.packageIndex, reqPath, len(reqs) > 0, extra)
	for _, args := range steps {
		say("$ %s %s", filepath.Base(args[0]), strings.Join(args[1:], " "))
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(buildEnviron(os.Environ()), "UV_PYTHON_DOWNLOADS=never", "UV_NO_CONFIG=1", "UV_LINK_MODE=copy", "NO_COLOR=1",
			"PIP_CONFIG_FILE=/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			os.RemoveAll(env)
			return "", failf("%s failed building the environment (%s): %v", tool, strings.Join(args[1:min(3, len(args))], " "), err)
		}
	}
	if err := os.WriteFile(filepath.Join(env, readyMarker), nil, 0o644); err != nil {
		return "", err
	}
	return env, nil
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
