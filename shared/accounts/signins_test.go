package accounts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/db/dbtest"
)

func TestSignIns(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, clk := newStore(t, open)
		bob := mustAdd(t, s, "bob", "password-bob", accounts.RoleViewer)

		si, err := s.CreateSignIn(ctx, bob.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if si.ID == "" || len(si.Token) < 40 || si.UserID != bob.ID || !si.CreatedAt.Equal(clk.Now()) || !si.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
			t.Fatalf("CreateSignIn = %+v", si)
		}
		got, u, err := s.SignInByToken(ctx, si.Token)
		if err != nil || got != si || u != bob {
			t.Fatalf("SignInByToken = %+v, %+v, %v", got, u, err)
		}
		active(t, s, si.ID, true)
		active(t, s, "unknown", false)

		for _, tc := range []struct {
			name    string
			user    string
			ttl     time.Duration
			wantErr error
		}{
			{"unknown user", "nobody", time.Hour, accounts.ErrNotFound},
			{"zero lifetime", bob.ID, 0, accounts.ErrInvalid},
		} {
			if _, err := s.CreateSignIn(ctx, tc.user, tc.ttl); !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: CreateSignIn = %v, want %v", tc.name, err, tc.wantErr)
			}
		}
		for _, token := range []string{"", "nope", si.Token + "x", string(make([]byte, 1000))} {
			if _, _, err := s.SignInByToken(ctx, token); !errors.Is(err, accounts.ErrNotFound) {
				t.Errorf("SignInByToken(%.10q) = %v, want ErrNotFound", token, err)
			}
		}

		// Expiry.
		clk.Advance(time.Hour - time.Millisecond)
		active(t, s, si.ID, true)
		clk.Advance(time.Millisecond)
		active(t, s, si.ID, false)
		if _, _, err := s.SignInByToken(ctx, si.Token); !errors.Is(err, accounts.ErrExpired) {
			t.Fatalf("expired: %v", err)
		}

		// Ending one.
		si, _ = s.CreateSignIn(ctx, bob.ID, time.Hour)
		other, _ := s.CreateSignIn(ctx, bob.ID, time.Hour)
		if err := s.EndSignIn(ctx, si.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.EndSignIn(ctx, si.ID); err != nil {
			t.Fatalf("ending twice: %v", err)
		}
		if err := s.EndSignIn(ctx, "unknown"); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("ending unknown: %v", err)
		}
		active(t, s, si.ID, false)
		active(t, s, other.ID, true)
		if _, _, err := s.SignInByToken(ctx, si.Token); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("ended: %v", err)
		}

		// Ending all of a user's.
		carol := mustAdd(t, s, "carol", "", accounts.RoleViewer)
		carols, _ := s.CreateSignIn(ctx, carol.ID, time.Hour)
		if err := s.EndSignInsOfUser(ctx, bob.ID); err != nil {
			t.Fatal(err)
		}
		active(t, s, other.ID, false)
		active(t, s, carols.ID, true)
	})
}

// TestLockEndsSignIns: a lock stops sessions at once, and unlocking does
// not bring them back.
func TestLockEndsSignIns(t *testing.T) {
	dbtest.ForEachDialect(t, func(t *testing.T, open openFunc) {
		ctx := context.Background()
		s, _ := newStore(t, open)
		bob := mustAdd(t, s, "bob", "password-bob", accounts.RoleViewer)
		si, err := s.CreateSignIn(ctx, bob.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetLocked(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		active(t, s, si.ID, false)
		if _, _, err := s.SignInByToken(ctx, si.Token); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("SignInByToken after lock = %v", err)
		}
		if _, err := s.CreateSignIn(ctx, bob.ID, time.Hour); !errors.Is(err, accounts.ErrLocked) {
			t.Fatalf("CreateSignIn for locked user = %v", err)
		}
		if err := s.SetLocked(ctx, "bob", false); err != nil {
			t.Fatal(err)
		}
		active(t, s, si.ID, false)

		// A sign-in created while unlocked is refused while the user is
		// locked, even if ending it were skipped.
		si, _ = s.CreateSignIn(ctx, bob.ID, time.Hour)
		if err := s.SetPassword(ctx, "bob", "another password"); err != nil {
			t.Fatal(err)
		}
		active(t, s, si.ID, false)
	})
}

func active(t *testing.T, s *accounts.Store, sid string, want bool) {
	t.Helper()
	got, err := s.SignInActive(context.Background(), sid)
	if err != nil || got != want {
		t.Fatalf("SignInActive(%s) = %v, %v; want %v", sid, got, err, want)
	}
}
