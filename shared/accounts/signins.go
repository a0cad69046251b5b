package accounts

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/atrium-suite/atrium/shared/db"
)

// signInKeep is how long ended and expired sign-ins stay in the table
// before CreateSignIn sweeps them away; a day is plenty to look into a
// problem report.
const signInKeep = 24 * time.Hour

// SignIn is a session at the embedded provider: the browser holds Token
// in the provider's cookie; ID is the OpenID "sid" that products keep, so
// they can ask whether the sign-in is still active (suite-wide sign-out).
type SignIn struct {
	ID     string
	UserID string
	// Token is set by CreateSignIn and SignInByToken only; the store keeps
	// its SHA-256.
	Token     string
	CreatedAt time.Time // when the user authenticated ("auth_time")
	ExpiresAt time.Time
}

// CreateSignIn starts a provider session for a user, valid for ttl.
func (s *Store) CreateSignIn(ctx context.Context, userID string, ttl time.Duration) (SignIn, error) {
	if ttl <= 0 {
		return SignIn{}, fmt.Errorf("%w: sign-in lifetime %s is not positive", ErrInvalid, ttl)
	}
	u, err := s.User(ctx, userID)
	if err != nil {
		return SignIn{}, err
	}
	if u.Locked {
		return SignIn{}, fmt.Errorf("user %q: %w", u.Username, ErrLocked)
	}
	var b [32]byte
	rand.Read(b[:])
	now := s.now()
	si := SignIn{
		ID: newID(), UserID: userID, Token: base64.RawURLEncoding.EncodeToString(b[:]),
		CreatedAt: fromMS(now.UnixMilli()), ExpiresAt: fromMS(now.Add(ttl).UnixMilli()),
	}
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		// Sweeping here keeps the table small without a background job;
		// sign-ins are created rarely enough for the cost not to matter.
		cutoff := now.Add(-signInKeep).UnixMilli()
		if _, err := tx.ExecContext(ctx, `DELETE FROM sign_ins WHERE expires_at < ? OR ended_at < ?`, cutoff, cutoff); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sign_ins (id, user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			si.ID, si.UserID, hashSecret(si.Token), si.CreatedAt.UnixMilli(), si.ExpiresAt.UnixMilli())
		return err
	})
	if err != nil {
		return SignIn{}, fmt.Errorf("create sign-in: %w", err)
	}
	return si, nil
}

// SignInByToken returns the active sign-in whose cookie token this is, and
// its user. An unknown or ended sign-in is ErrNotFound, an expired one
// ErrExpired, and one whose user is locked ErrLocked.
func (s *Store) SignInByToken(ctx context.Context, token string) (SignIn, User, error) {
	if token == "" || len(token) > 128 {
		return SignIn{}, User{}, ErrNotFound
	}
	var (
		si               SignIn
		created, expires int64
		ended            *int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, user_id, created_at, expires_at, ended_at FROM sign_ins WHERE token_hash = ?`,
		hashSecret(token)).Scan(&si.ID, &si.UserID, &created, &expires, &ended)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && ended != nil) {
		return SignIn{}, User{}, ErrNotFound
	}
	if err != nil {
		return SignIn{}, User{}, fmt.Errorf("sign-in: %w", err)
	}
	si.Token, si.CreatedAt, si.ExpiresAt = token, fromMS(created), fromMS(expires)
	if !s.now().Before(si.ExpiresAt) {
		return SignIn{}, User{}, fmt.Errorf("sign-in: %w", ErrExpired)
	}
	u, err := s.User(ctx, si.UserID)
	if err != nil {
		return SignIn{}, User{}, err
	}
	if u.Locked {
		return SignIn{}, User{}, fmt.Errorf("user %q: %w", u.Username, ErrLocked)
	}
	return si, u, nil
}

// SignInActive reports whether the sign-in with this ID (an ID token's
// "sid") is still on: false once it was ended, has expired, or its user is
// locked, and for IDs it does not know.
func (s *Store) SignInActive(ctx context.Context, sid string) (bool, error) {
	r, err := s.signIns.Get(ctx, s.db, sid, func() (signInRow, error) {
		var r signInRow
		var ended *int64
		err := s.db.QueryRowContext(ctx, `SELECT s.expires_at, s.ended_at, u.locked FROM sign_ins s JOIN users u ON u.id = s.user_id WHERE s.id = ?`,
			sid).Scan(&r.expires, &ended, &r.locked)
		r.ended = ended != nil
		return r, err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sign-in %s: %w", sid, err)
	}
	return !r.ended && !r.locked && s.now().UnixMilli() < r.expires, nil
}

// signInRow is what SignInActive reads; expiry is judged at each call.
type signInRow struct {
	expires       int64
	ended, locked bool
}

// EndSignIn ends one sign-in (sign-out). Ending one that already ended is
// not an error; an unknown ID is ErrNotFound.
func (s *Store) EndSignIn(ctx context.Context, sid string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sign_ins SET ended_at = ? WHERE id = ? AND ended_at IS NULL`, s.nowMS(), sid)
	if err != nil {
		return fmt.Errorf("end sign-in: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("end sign-in: %w", err)
	} else if n > 0 {
		return nil
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sign_ins WHERE id = ?)`, sid).Scan(&exists); err != nil {
		return fmt.Errorf("end sign-in: %w", err)
	}
	if !exists {
		return fmt.Errorf("sign-in %s: %w", sid, ErrNotFound)
	}
	return nil
}

// EndSignInsOfUser ends every sign-in of a user (sign out everywhere).
func (s *Store) EndSignInsOfUser(ctx context.Context, userID string) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error { return s.endSignInsOfUser(ctx, tx, userID) })
}

func (s *Store) endSignInsOfUser(ctx context.Context, tx *db.Tx, userID string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE sign_ins SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL`, s.nowMS(), userID); err != nil {
		return fmt.Errorf("end sign-ins: %w", err)
	}
	return nil
}
