package accounts_test

import (
	"github.com/atrium-suite/atrium/shared/testutil"

	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

func newClock() *clock { return testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

// clock is the tests' settable time.
type clock = testutil.Clock

type openFunc = func(t *testing.T, migrations fs.FS) *db.DB

func newStore(t *testing.T, open openFunc) (*accounts.Store, *clock) {
	t.Helper()
	clk := newClock()
	s := accounts.OpenDB(open(t, accounts.Migrations), accounts.WithClock(clk.Now), accounts.WithBcryptCost(bcrypt.MinCost))
	return s, clk
}

func mustAdd(t *testing.T, s *accounts.Store, username, password string, role accounts.Role) accounts.User {
	t.Helper()
	u, err := s.AddUser(context.Background(), accounts.NewUser{Username: username, Name: "Name of " + username, Email: username + "@example.com", Password: password, Role: role})
	if err != nil {
		t.Fatalf("AddUser(%s): %v", username, err)
	}
	return u
}

func TestAddUser(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, clk := newStore(t, open)
		mustAdd(t, s, "taken", "", accounts.RoleViewer)
		for _, tc := range []struct {
			name    string
			nu      accounts.NewUser
			wantErr error
		}{
			{"with password", accounts.NewUser{Username: "alice", Name: " Alice ", Email: "alice@example.com", Password: "correct horse", Role: accounts.RoleAdmin}, nil},
			{"without password", accounts.NewUser{Username: "robot.1_x-y", Role: accounts.RolePublisher}, nil},
			{"default role", accounts.NewUser{Username: "dflt"}, nil},
			{"64 characters", accounts.NewUser{Username: strings.Repeat("a", 64)}, nil},
			{"65 characters", accounts.NewUser{Username: strings.Repeat("a", 65)}, accounts.ErrInvalid},
			{"upper case", accounts.NewUser{Username: "Alice"}, accounts.ErrInvalid},
			{"leading dot", accounts.NewUser{Username: ".alice"}, accounts.ErrInvalid},
			{"space", accounts.NewUser{Username: "al ice"}, accounts.ErrInvalid},
			{"empty", accounts.NewUser{Username: ""}, accounts.ErrInvalid},
			{"slash", accounts.NewUser{Username: "a/b"}, accounts.ErrInvalid},
			{"short password", accounts.NewUser{Username: "bob", Password: "1234567"}, accounts.ErrInvalid},
			{"long password", accounts.NewUser{Username: "bob", Password: strings.Repeat("x", 73)}, accounts.ErrInvalid},
			{"bad role", accounts.NewUser{Username: "bob", Role: "root"}, accounts.ErrInvalid},
			{"long name", accounts.NewUser{Username: "bob", Name: strings.Repeat("n", 201)}, accounts.ErrInvalid},
			{"duplicate", accounts.NewUser{Username: "taken"}, accounts.ErrExists},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u, err := s.AddUser(ctx, tc.nu)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("AddUser = %v, want %v", err, tc.wantErr)
				}
				if err != nil {
					if msg := err.Error(); errors.Is(err, accounts.ErrInvalid) && !strings.Contains(msg, "must") && !strings.Contains(msg, "one of") {
						t.Errorf("message %q does not say what to fix", err)
					}
					return
				}
				wantRole := tc.nu.Role
				if wantRole == "" {
					wantRole = accounts.RoleViewer
				}
				if u.ID == "" || u.Username != tc.nu.Username || u.Role != wantRole || u.Name != strings.TrimSpace(tc.nu.Name) ||
					u.HasPassword != (tc.nu.Password != "") || u.Locked || !u.CreatedAt.Equal(clk.Now()) {
					t.Fatalf("AddUser = %+v", u)
				}
				got, err := s.User(ctx, u.ID)
				if err != nil || got != u {
					t.Fatalf("User = %+v, %v; want %+v", got, err, u)
				}
			})
		}
	})
}

func TestLookups(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, _ := newStore(t, open)
		bob := mustAdd(t, s, "bob", "password-bob", accounts.RoleViewer)
		alice := mustAdd(t, s, "alice", "", accounts.RoleAdmin)

		if u, err := s.UserByUsername(ctx, "  BOB "); err != nil || u != bob {
			t.Fatalf("UserByUsername = %+v, %v", u, err)
		}
		if _, err := s.UserByUsername(ctx, "carol"); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("UserByUsername(unknown) = %v", err)
		}
		if _, err := s.User(ctx, "no-such-id"); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("User(unknown) = %v", err)
		}
		users, err := s.ListUsers(ctx)
		if err != nil || len(users) != 2 || users[0] != alice || users[1] != bob {
			t.Fatalf("ListUsers = %+v, %v", users, err)
		}
	})
}

func TestSetRoleLockedPassword(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, clk := newStore(t, open)
		mustAdd(t, s, "bob", "password-bob", accounts.RoleViewer)
		clk.Advance(time.Hour)

		for _, tc := range []struct {
			name    string
			do      func() error
			wantErr error
		}{
			{"role", func() error { return s.SetRole(ctx, "bob", accounts.RolePublisher) }, nil},
			{"bad role", func() error { return s.SetRole(ctx, "bob", "owner") }, accounts.ErrInvalid},
			{"role of unknown", func() error { return s.SetRole(ctx, "carol", accounts.RoleAdmin) }, accounts.ErrNotFound},
			{"lock unknown", func() error { return s.SetLocked(ctx, "carol", true) }, accounts.ErrNotFound},
			{"short password", func() error { return s.SetPassword(ctx, "bob", "short") }, accounts.ErrInvalid},
			{"password of unknown", func() error { return s.SetPassword(ctx, "carol", "long enough") }, accounts.ErrNotFound},
			{"password", func() error { return s.SetPassword(ctx, "BOB", "new password") }, nil},
		} {
			if err := tc.do(); !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
			}
		}
		u, err := s.UserByUsername(ctx, "bob")
		if err != nil || u.Role != accounts.RolePublisher || !u.UpdatedAt.Equal(clk.Now()) || u.CreatedAt.Equal(u.UpdatedAt) {
			t.Fatalf("after SetRole: %+v, %v", u, err)
		}
		if _, err := s.CheckPassword(ctx, "bob", "password-bob"); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("old password: %v", err)
		}
		if _, err := s.CheckPassword(ctx, "bob", "new password"); err != nil {
			t.Fatalf("new password: %v", err)
		}
		if err := s.SetPassword(ctx, "bob", ""); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.UserByUsername(ctx, "bob"); u.HasPassword {
			t.Fatal("HasPassword after removing the password")
		}
		if _, err := s.CheckPassword(ctx, "bob", ""); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("empty password: %v", err)
		}

		if err := s.SetLocked(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.UserByUsername(ctx, "bob"); !u.Locked {
			t.Fatal("not locked")
		}
		if err := s.SetLocked(ctx, "bob", false); err != nil {
			t.Fatal(err)
		}
		if u, _ := s.UserByUsername(ctx, "bob"); u.Locked {
			t.Fatal("still locked")
		}
	})
}

func TestCheckPassword(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, _ := newStore(t, open)
		bob := mustAdd(t, s, "bob", "password-bob", accounts.RoleViewer)
		mustAdd(t, s, "nopw", "", accounts.RoleViewer)
		mustAdd(t, s, "locked", "password-locked", accounts.RoleViewer)
		if err := s.SetLocked(ctx, "locked", true); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, user, password string
			wantErr              error
		}{
			{"right", "bob", "password-bob", nil},
			{"right, other case", "Bob", "password-bob", nil},
			{"wrong", "bob", "password-bo", accounts.ErrBadCredentials},
			{"unknown user", "carol", "password-bob", accounts.ErrBadCredentials},
			{"user without password", "nopw", "", accounts.ErrBadCredentials},
			{"locked, right password", "locked", "password-locked", accounts.ErrLocked},
			{"locked, wrong password", "locked", "nope-nope", accounts.ErrBadCredentials},
			{"too long", "bob", strings.Repeat("p", 100), accounts.ErrBadCredentials},
		} {
			u, err := s.CheckPassword(ctx, tc.user, tc.password)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: CheckPassword = %v, want %v", tc.name, err, tc.wantErr)
			}
			if err == nil && u != bob {
				t.Errorf("%s: CheckPassword = %+v", tc.name, u)
			}
		}
	})
}

func TestUpsertExternal(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, _ := newStore(t, open)
		mustAdd(t, s, "alice", "", accounts.RoleViewer)
		mustAdd(t, s, "alice-2", "", accounts.RoleViewer)
		const iss = "https://idp.example.com"
		pub, admin := accounts.RolePublisher, accounts.RoleAdmin

		first, err := s.UpsertExternal(ctx, iss, "sub-1", "Alice@Example.com", "Alice A", "alice@example.com", nil)
		if err != nil {
			t.Fatal(err)
		}
		if first.Username != "alice-3" || first.Role != accounts.RoleViewer || first.Issuer != iss || first.Subject != "sub-1" || first.HasPassword {
			t.Fatalf("first sign-in = %+v", first)
		}
		again, err := s.UpsertExternal(ctx, iss, "sub-1", "someone-else", "Alice B", "b@example.com", nil)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID || again.Username != "alice-3" || again.Name != "Alice B" || again.Email != "b@example.com" || again.Role != accounts.RoleViewer {
			t.Fatalf("second sign-in = %+v", again)
		}
		withRole, err := s.UpsertExternal(ctx, iss, "sub-1", "", "Alice B", "b@example.com", &pub)
		if err != nil || withRole.Role != accounts.RolePublisher {
			t.Fatalf("with role = %+v, %v", withRole, err)
		}
		other, err := s.UpsertExternal(ctx, "https://other.example.com", "sub-1", "Ålice Ünïcode", "", "", &admin)
		if err != nil || other.ID == first.ID || other.Role != accounts.RoleAdmin || accounts.ValidUsername(other.Username) != nil {
			t.Fatalf("other issuer = %+v, %v", other, err)
		}

		if err := s.SetLocked(ctx, "alice-3", true); err != nil {
			t.Fatal(err)
		}
		locked, err := s.UpsertExternal(ctx, iss, "sub-1", "", "Alice C", "", nil)
		if !errors.Is(err, accounts.ErrLocked) || locked.ID != first.ID || locked.Name != "Alice C" {
			t.Fatalf("locked = %+v, %v", locked, err)
		}

		for _, tc := range []struct {
			name        string
			issuer, sub string
			role        accounts.Role
			wantErr     error
		}{
			{"no issuer", "", "x", "", accounts.ErrInvalid},
			{"no subject", iss, "", "", accounts.ErrInvalid},
			{"bad role", iss, "x", "root", accounts.ErrInvalid},
		} {
			var role *accounts.Role
			if tc.role != "" {
				role = &tc.role
			}
			if _, err := s.UpsertExternal(ctx, tc.issuer, tc.sub, "x", "", "", role); !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
			}
		}
	})
}

// TestUpsertExternalConcurrent: many first sign-ins of the same person at
// once must create one user.
func TestUpsertExternalConcurrent(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, _ := newStore(t, open)
		const n = 8
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				u, err := s.UpsertExternal(ctx, "https://idp", "same", "dup", "", "", nil)
				ids[i], errs[i] = u.ID, err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("sign-in %d: id %s, err %v (first id %s)", i, ids[i], errs[i], ids[0])
			}
		}
		if users, _ := s.ListUsers(ctx); len(users) != 1 {
			t.Fatalf("%d users, want 1", len(users))
		}
	})
}

func TestUsernameFrom(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                 "alice",
		"Alice.Smith@corp.com":  "alice.smith",
		"John Doe":              "john-doe",
		"@@@":                   "user",
		"":                      "user",
		"__x":                   "x",
		strings.Repeat("z", 80): strings.Repeat("z", 64),
		"émile":                 "mile",
	} {
		if got := accounts.UsernameFrom(in); got != want {
			t.Errorf("UsernameFrom(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzUsernameFrom(f *testing.F) {
	for _, s := range []string{"alice", "A@b", "  ", "ü@", "..--__", strings.Repeat("é", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if got := accounts.UsernameFrom(in); accounts.ValidUsername(got) != nil {
			t.Fatalf("UsernameFrom(%q) = %q, not a valid username", in, got)
		}
	})
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	s, err := accounts.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, "bob", "", accounts.RoleViewer)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Shared.DataDir, "accounts", "accounts.db")); err != nil {
		t.Fatal(err)
	}
	// Reopening finds the user: the data is in that file.
	s, err = accounts.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.UserByUsername(ctx, "bob"); err != nil {
		t.Fatal(err)
	}

	cfg.Shared.DataDir = ""
	if _, err := accounts.Open(ctx, cfg, nil); err == nil {
		t.Fatal("Open without data dir or database succeeded")
	}
}

func TestParseRole(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    accounts.Role
		wantErr bool
	}{
		{"viewer", accounts.RoleViewer, false},
		{" Publisher ", accounts.RolePublisher, false},
		{"admin", accounts.RoleAdmin, false},
		{"root", "", true},
		{"", "", true},
	} {
		got, err := accounts.ParseRole(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, accounts.ErrInvalid)) {
			t.Errorf("ParseRole(%q) = %q, %v", tc.in, got, err)
		}
	}
}
