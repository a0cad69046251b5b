package accounts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AdminUsername is the user EnsureAdmin creates.
const AdminUsername = "admin"

// adminPasswordLen random base62 characters are about 143 bits.
const adminPasswordLen = 24

// EnsureAdmin gives a new installation its first administrator. When no
// user named "admin" exists it creates one (role admin) whose password is
// the content of passwordFile, if that file exists, or else a new random
// password that it writes to passwordFile (mode 0600) first. The file is
// never overwritten: an admin who put a password there keeps it, and a
// second server starting at the same moment reads the first one's file
// instead of replacing it. When "admin" exists, nothing happens.
//
// It reports whether it created the user.
func (s *Store) EnsureAdmin(ctx context.Context, passwordFile string) (bool, error) {
	if passwordFile == "" {
		return false, fmt.Errorf("%w: admin password file is required", ErrInvalid)
	}
	if _, err := s.UserByUsername(ctx, AdminUsername); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	password, err := s.adminPassword(passwordFile)
	if err != nil {
		return false, err
	}
	_, err = s.AddUser(ctx, NewUser{Username: AdminUsername, Name: "Administrator", Password: password, Role: RoleAdmin})
	if errors.Is(err, ErrExists) {
		return false, nil // another server created it meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("create admin: %w", err)
	}
	s.log.Info("created the first administrator", "user", AdminUsername, "password_file", passwordFile)
	return true, nil
}

// adminPassword reads the password file, creating it with a random
// password when it does not exist.
func (s *Store) adminPassword(path string) (string, error) {
	password, err := readPasswordFile(path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			s.log.Warn("admin password file is readable by others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
		}
		return password, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := createFile(path, []byte(randomBase62(adminPasswordLen)+"\n")); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("admin password file: %w", err)
	}
	// Read back what is there: if another server won the race, its
	// password is the one that counts.
	return readPasswordFile(path)
}

func readPasswordFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin password file: %w", err)
	}
	// Editors add a final newline; surrounding space is never meant.
	password := strings.TrimSpace(string(b))
	if err := checkPassword(password); err != nil {
		return "", fmt.Errorf("admin password file %s: %w", path, err)
	}
	return password, nil
}

// createFile writes data to path only if path does not exist, so that
// nobody ever sees a half-written file: the data goes to a private temp
// file in the same directory, is synced, and is then hard-linked into
// place, which fails with fs.ErrExist instead of replacing a file (unlike
// rename).
func createFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".admin-password-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable
		d.Close()
	}
	return nil
}
