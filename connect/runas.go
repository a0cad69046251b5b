package connect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// contentAccount is the unprivileged account content runs as.
type contentAccount struct {
	name     string
	uid, gid int
}

// runAs is set up once per server.
type runAs struct {
	once sync.Once
	acct *contentAccount // nil: content runs as the server's user
	err  error
}

// contentUser returns the account content processes run as and gives it
// dir, the bundle's working directory. Running as root, that is
// connect.run_as (created when missing); otherwise content runs as the
// server's own user (launcher.Spec.User empty), as switching users needs
// root.
func (s *Server) contentUser(dir string) (string, error) {
	a, err := s.contentAccount()
	if err != nil || a == nil {
		return "", err
	}
	if err := os.Chown(filepath.Dir(dir), -1, a.gid); err != nil { // apps/{guid}
		return "", fmt.Errorf("open %s to %s: %w", filepath.Dir(dir), a.name, err)
	}
	// The app may write in its working directory (caches, uploads), as on
	// Posit Connect, and nowhere else of the data dir.
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return os.Lchown(p, a.uid, a.gid)
		}
		return os.Chown(p, a.uid, a.gid)
	})
	if err != nil {
		return "", fmt.Errorf("give %s to %s: %w", dir, a.name, err)
	}
	return a.name, nil
}

// contentAccount is the account content runs as; nil when it runs as the
// server's own user.
func (s *Server) contentAccount() (*contentAccount, error) {
	s.runAs.once.Do(func() { s.runAs.acct, s.runAs.err = s.setUpRunAs() })
	return s.runAs.acct, s.runAs.err
}

// setUpRunAs finds (or creates) the content account and lets its group
// reach bundles and environments: the data dir and Connect's dir are
// opened for traversal only (mode 0710, no listing), apps/ and envs/ for
// reading. Everything else there stays the server's (0600/0640 files of
// group root).
func (s *Server) setUpRunAs() (*contentAccount, error) {
	name := s.Config.Connect.RunAs
	if os.Geteuid() != 0 || name == "" {
		if name != "" {
			s.Log.Info("not running as root: content runs as the server's own user", "run_as", name)
		}
		return nil, nil
	}
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		if err := createSystemUser(name); err != nil {
			return nil, err
		}
		s.Log.Info("created the account content runs as", "user", name)
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("connect.run_as %q: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return nil, fmt.Errorf("connect.run_as %q is root; content must run unprivileged", name)
	}
	a := &contentAccount{name: name, uid: uid, gid: gid}
	if err := checkReachable(filepath.Dir(filepath.Dir(s.DataDir)), a); err != nil {
		return nil, err
	}
	dirs := []struct {
		path string
		mode fs.FileMode
	}{
		{filepath.Dir(s.DataDir), 0o710},
		{s.DataDir, 0o710},
		{s.appsDir, 0o750},
		{s.envsDir, 0o750},
	}
	for _, d := range dirs {
		if err := os.Chown(d.path, -1, gid); err != nil {
			return nil, fmt.Errorf("open %s to %s: %w", d.path, name, err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("open %s to %s: %w", d.path, name, err)
		}
	}
	return a, nil
}

// checkReachable fails, naming the directory, when a cannot search every
// directory from / down to dir: otherwise content would fail later with a
// bare "permission denied" at exec.
func checkReachable(dir string, a *contentAccount) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !canAccess(fi, a, 0o1) {
			return fmt.Errorf("content runs as %s (connect.run_as), which cannot reach %s (mode %04o): let others search it (chmod o+x %s), or move what is below it", a.name, d, fi.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// checkRunnable fails when a cannot execute the program at path.
func checkRunnable(path string, a *contentAccount) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if err := checkReachable(filepath.Dir(real), a); err != nil {
		return fmt.Errorf("%s: %w", real, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !canAccess(fi, a, 0o1) {
		return fmt.Errorf("content runs as %s (connect.run_as), which may not execute %s", a.name, real)
	}
	return nil
}

// canAccess reports whether a has the permission bits want (rwx as 4/2/1)
// on fi, by owner, group or others.
func canAccess(fi os.FileInfo, a *contentAccount, want fs.FileMode) bool {
	mode := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	return (int(st.Uid) == a.uid && mode&(want<<6) != 0) ||
		(int(st.Gid) == a.gid && mode&(want<<3) != 0) ||
		mode&want != 0
}

// createSystemUser adds a system account with no login shell and no home,
// as a package's postinst would.
func createSystemUser(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create user %q for content (connect.run_as): %v: %s", name, err, out)
	}
	return nil
}
