package accounts_test

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

var keyPattern = regexp.MustCompile(`^atr_[0-9A-Za-z]{40}$`)

func TestCreateAPIKey(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, clk := newStore(t, open)
		bob := mustAdd(t, s, "bob", "", accounts.RoleViewer)
		locked := mustAdd(t, s, "locked", "", accounts.RoleViewer)
		if err := s.SetLocked(ctx, "locked", true); err != nil {
			t.Fatal(err)
		}
		future, past := clk.Now().Add(time.Hour), clk.Now().Add(-time.Second)
		for _, tc := range []struct {
			name, user, key, product string
			expires                  *time.Time
			wantErr                  error
		}{
			{"every product", bob.ID, "laptop", "", nil, nil},
			{"one product, expiring", bob.ID, "deploy", "connect", &future, nil},
			{"empty name", bob.ID, "  ", "", nil, accounts.ErrInvalid},
			{"long name", bob.ID, strings.Repeat("k", 101), "", nil, accounts.ErrInvalid},
			{"unknown product", bob.ID, "x", "jupyter", nil, accounts.ErrInvalid},
			{"expiry in the past", bob.ID, "x", "", &past, accounts.ErrInvalid},
			{"unknown user", "nobody", "x", "", nil, accounts.ErrNotFound},
			{"locked user", locked.ID, "x", "", nil, accounts.ErrLocked},
		} {
			key, k, err := s.CreateAPIKey(ctx, tc.user, tc.key, tc.product, tc.expires)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: CreateAPIKey = %v, want %v", tc.name, err, tc.wantErr)
				continue
			}
			if err != nil {
				continue
			}
			if !keyPattern.MatchString(key) || !strings.HasPrefix(key, k.Prefix) || len(k.Prefix) < 8 ||
				k.UserID != tc.user || k.Name != tc.key || k.Product != tc.product || k.LastUsedAt != nil ||
				!k.CreatedAt.Equal(clk.Now()) || (tc.expires == nil) != (k.ExpiresAt == nil) {
				t.Errorf("%s: CreateAPIKey = %q, %+v", tc.name, key, k)
			}
		}
		keys, err := s.ListAPIKeys(ctx, bob.ID)
		if err != nil || len(keys) != 2 || keys[0].Name != "laptop" || keys[1].Name != "deploy" || !keys[1].ExpiresAt.Equal(future) {
			t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
		}
		if keys, err := s.ListAPIKeys(ctx, locked.ID); err != nil || len(keys) != 0 {
			t.Fatalf("ListAPIKeys(no keys) = %+v, %v", keys, err)
		}
	})
}

func TestAuthenticateKey(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, clk := newStore(t, open)
		bob := mustAdd(t, s, "bob", "", accounts.RolePublisher)
		carol := mustAdd(t, s, "carol", "", accounts.RoleViewer)
		expires := clk.Now().Add(time.Hour)
		anyKey, _, err := s.CreateAPIKey(ctx, bob.ID, "any", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		connectKey, _, _ := s.CreateAPIKey(ctx, bob.ID, "connect only", "connect", nil)
		expiringKey, _, _ := s.CreateAPIKey(ctx, bob.ID, "expiring", "", &expires)
		revokedKey, revoked, _ := s.CreateAPIKey(ctx, bob.ID, "revoked", "", nil)
		carolKey, _, _ := s.CreateAPIKey(ctx, carol.ID, "carol's", "", nil)

		if err := s.RevokeAPIKey(ctx, carol.ID, revoked.ID); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("revoking another user's key = %v", err)
		}
		if err := s.RevokeAPIKey(ctx, bob.ID, revoked.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeAPIKey(ctx, bob.ID, revoked.ID); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("second revoke = %v", err)
		}
		// A key of the right shape that was never issued.
		forged := "atr_" + strings.Repeat("A", 40)

		check := func(name, key, product string, wantUser string, wantErr error) {
			t.Helper()
			u, k, err := s.AuthenticateKey(ctx, key, product)
			if !errors.Is(err, wantErr) {
				t.Errorf("%s: AuthenticateKey = %v, want %v", name, err, wantErr)
				return
			}
			if err == nil && (u.ID != wantUser || k.UserID != wantUser || !strings.HasPrefix(key, k.Prefix)) {
				t.Errorf("%s: AuthenticateKey = %+v, %+v", name, u, k)
			}
		}
		check("any product", anyKey, "workbench", bob.ID, nil)
		check("its product", connectKey, "connect", bob.ID, nil)
		check("wrong product", connectKey, "packagemanager", "", accounts.ErrBadCredentials)
		check("other user", carolKey, "connect", carol.ID, nil)
		check("revoked", revokedKey, "connect", "", accounts.ErrBadCredentials)
		check("forged", forged, "connect", "", accounts.ErrBadCredentials)
		check("empty", "", "connect", "", accounts.ErrBadCredentials)
		check("truncated", anyKey[:20], "connect", "", accounts.ErrBadCredentials)
		check("bad character", anyKey[:43]+"!", "connect", "", accounts.ErrBadCredentials)
		check("not yet expired", expiringKey, "connect", bob.ID, nil)

		clk.Advance(time.Hour)
		check("expired", expiringKey, "connect", "", accounts.ErrExpired)

		if err := s.SetLocked(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		check("locked owner", anyKey, "connect", "", accounts.ErrLocked)
		if err := s.SetLocked(ctx, "bob", false); err != nil {
			t.Fatal(err)
		}
		check("unlocked owner", anyKey, "connect", bob.ID, nil)
	})
}

// TestKeyLastUsed: last_used_at is written at most once a minute.
func TestKeyLastUsed(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, clk := newStore(t, open)
		bob := mustAdd(t, s, "bob", "", accounts.RoleViewer)
		key, _, err := s.CreateAPIKey(ctx, bob.ID, "k", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		lastUsed := func() time.Time {
			t.Helper()
			keys, err := s.ListAPIKeys(ctx, bob.ID)
			if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil {
				t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
			}
			return *keys[0].LastUsedAt
		}
		use := func() time.Time {
			t.Helper()
			_, k, err := s.AuthenticateKey(ctx, key, "connect")
			if err != nil || k.LastUsedAt == nil {
				t.Fatalf("AuthenticateKey = %+v, %v", k, err)
			}
			return *k.LastUsedAt
		}
		first := clk.Now()
		if got := use(); !got.Equal(first) || !lastUsed().Equal(first) {
			t.Fatalf("first use recorded %v / %v, want %v", got, lastUsed(), first)
		}
		clk.Advance(59 * time.Second)
		if got := use(); !got.Equal(first) || !lastUsed().Equal(first) {
			t.Fatalf("use within a minute recorded %v / %v, want %v", got, lastUsed(), first)
		}
		clk.Advance(time.Second)
		if got := use(); !got.Equal(clk.Now()) || !lastUsed().Equal(clk.Now()) {
			t.Fatalf("use after a minute recorded %v / %v, want %v", got, lastUsed(), clk.Now())
		}
	})
}

// FuzzAuthenticateKey: whatever a client sends as a key is refused with
// ErrBadCredentials, except the one real key.
func FuzzAuthenticateKey(f *testing.F) {
	ctx := context.Background()
	d, err := db.Open(ctx, db.Config{SQLitePath: filepath.Join(f.TempDir(), "accounts.db"), Schema: "accounts", Migrations: accounts.Migrations})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	s := accounts.OpenDB(d, accounts.WithBcryptCost(bcrypt.MinCost))
	u, err := s.AddUser(ctx, accounts.NewUser{Username: "bob"})
	if err != nil {
		f.Fatal(err)
	}
	key, _, err := s.CreateAPIKey(ctx, u.ID, "k", "connect", nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{key, key[:43], key + "x", "atr_", "", "atr_" + strings.Repeat("\xff", 40), strings.ToUpper(key)} {
		f.Add(seed, "connect")
	}
	f.Add(key, "workbench")
	f.Fuzz(func(t *testing.T, k, product string) {
		got, _, err := s.AuthenticateKey(ctx, k, product)
		if k == key && product == "connect" {
			if err != nil || got.ID != u.ID {
				t.Fatalf("real key refused: %v", err)
			}
			return
		}
		if !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("AuthenticateKey(%q, %q) = %+v, %v", k, product, got, err)
		}
	})
}

// TestKeyChecksSeeOtherProcesses: on SQLite a found key is remembered while
// the database is unchanged, and a lock, a revocation or a role change made
// by another opener of the file (the `atrium users` CLI is another process)
// is seen by the very next check.
func TestKeyChecksSeeOtherProcesses(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Shared.DataDir = t.TempDir()
	server, err := accounts.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	cli, err := accounts.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	bob := mustAdd(t, server, "bob", "", accounts.RoleViewer)
	key, k, err := server.CreateAPIKey(ctx, bob.ID, "laptop", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // the first check reads, the next ones may be remembered
		if u, _, err := server.AuthenticateKey(ctx, key, "connect"); err != nil || u.Role != accounts.RoleViewer {
			t.Fatalf("AuthenticateKey: %v %v", u.Role, err)
		}
	}
	if err := cli.SetRole(ctx, "bob", accounts.RolePublisher); err != nil {
		t.Fatal(err)
	}
	if u, _, err := server.AuthenticateKey(ctx, key, "connect"); err != nil || u.Role != accounts.RolePublisher {
		t.Fatalf("after a role change elsewhere: %v %v", u.Role, err)
	}
	if err := cli.SetLocked(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.AuthenticateKey(ctx, key, "connect"); !errors.Is(err, accounts.ErrLocked) {
		t.Fatalf("after a lock elsewhere: %v, want ErrLocked", err)
	}
	if err := cli.SetLocked(ctx, "bob", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.AuthenticateKey(ctx, key, "connect"); err != nil {
		t.Fatalf("after unlocking: %v", err)
	}
	if err := cli.RevokeAPIKey(ctx, bob.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.AuthenticateKey(ctx, key, "connect"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("after a revocation elsewhere: %v, want ErrBadCredentials", err)
	}
}
