package accounts_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

func TestEnsureAdmin(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		for _, tc := range []struct {
			name        string
			setup       func(t *testing.T, s *accounts.Store, file string)
			wantCreated bool
			wantErr     error
			// wantPassword is the password "admin" must have afterwards:
			// "" means whatever the file holds, "-" means no admin
			// created by EnsureAdmin.
			wantPassword string
		}{
			{name: "new install, no file", wantCreated: true},
			{name: "new install, file given", setup: func(t *testing.T, _ *accounts.Store, file string) {
				writeFile(t, file, "  chosen password\n", 0o600)
			}, wantCreated: true, wantPassword: "chosen password"},
			{name: "file with a short password", setup: func(t *testing.T, _ *accounts.Store, file string) {
				writeFile(t, file, "short\n", 0o600)
			}, wantErr: accounts.ErrInvalid, wantPassword: "-"},
			{name: "admin exists", setup: func(t *testing.T, s *accounts.Store, _ string) {
				mustAdd(t, s, "admin", "existing password", accounts.RolePublisher)
			}, wantPassword: "-"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, _ := newStore(t, open)
				file := filepath.Join(t.TempDir(), "secrets", "admin-password")
				var before []byte
				if tc.setup != nil {
					tc.setup(t, s, file)
					before, _ = os.ReadFile(file)
				}
				created, err := s.EnsureAdmin(ctx, file)
				if created != tc.wantCreated || !errors.Is(err, tc.wantErr) {
					t.Fatalf("EnsureAdmin = %v, %v; want %v, %v", created, err, tc.wantCreated, tc.wantErr)
				}
				after, readErr := os.ReadFile(file)
				switch {
				case before != nil && string(after) != string(before):
					t.Fatalf("password file was overwritten: %q -> %q", before, after)
				case tc.wantPassword == "-":
					if before == nil && readErr == nil {
						t.Fatal("password file created although no admin was created")
					}
					u, err := s.UserByUsername(ctx, "admin")
					if err == nil && u.Role == accounts.RoleAdmin {
						t.Fatalf("admin created: %+v", u)
					}
					return
				}
				if readErr != nil {
					t.Fatal(readErr)
				}
				fi, _ := os.Stat(file)
				if before == nil && fi.Mode().Perm() != 0o600 {
					t.Fatalf("password file mode %v, want 0600", fi.Mode().Perm())
				}
				password := strings.TrimSpace(string(after))
				if tc.wantPassword != "" && password != tc.wantPassword {
					t.Fatalf("password %q, want %q", password, tc.wantPassword)
				}
				u, err := s.CheckPassword(ctx, "admin", password)
				if err != nil || u.Role != accounts.RoleAdmin {
					t.Fatalf("CheckPassword(admin) = %+v, %v", u, err)
				}
				if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
					t.Fatalf("temp files left: %v", entries)
				}

				// A second start changes nothing.
				created, err = s.EnsureAdmin(ctx, file)
				if created || err != nil {
					t.Fatalf("second EnsureAdmin = %v, %v", created, err)
				}
				if again, _ := os.ReadFile(file); string(again) != string(after) {
					t.Fatal("second EnsureAdmin rewrote the file")
				}
			})
		}
	})
}

// TestEnsureAdminKeepsFile: the file outlives the database; a later
// EnsureAdmin reuses it rather than replacing it.
func TestEnsureAdminKeepsFile(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		file := filepath.Join(t.TempDir(), "admin-password")
		s1, _ := newStore(t, open)
		if _, err := s1.EnsureAdmin(ctx, file); err != nil {
			t.Fatal(err)
		}
		first, _ := os.ReadFile(file)
		s2, _ := newStore(t, open) // a fresh database, the same file
		if created, err := s2.EnsureAdmin(ctx, file); !created || err != nil {
			t.Fatalf("EnsureAdmin = %v, %v", created, err)
		}
		if second, _ := os.ReadFile(file); string(second) != string(first) {
			t.Fatal("file replaced")
		}
		if _, err := s2.CheckPassword(ctx, "admin", strings.TrimSpace(string(first))); err != nil {
			t.Fatal(err)
		}
		if _, err := s2.EnsureAdmin(ctx, ""); !errors.Is(err, accounts.ErrInvalid) {
			t.Fatalf("EnsureAdmin(\"\") = %v", err)
		}
	})
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
