package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Track is the migration track of auth's tables in a product's database;
// the tables are named auth_*.
const Track = "auth"

// Migrations returns the SQL migrations of auth's tables, for
// (*db.DB).Migrate. New applies them.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded; this cannot happen
	}
	return sub
}

// loginTTL bounds how long a person may take at the provider; after that
// the pending sign-in is gone and the callback asks them to start again.
const loginTTL = 10 * time.Minute

// session is a row of auth_sessions.
type session struct {
	tokenHash string
	userID    string
	sid       string
	idToken   string
	csrf      string
	expiresAt time.Time
}

// pendingLogin is a row of auth_logins.
type pendingLogin struct {
	nonce, verifier, next string
}

// newToken returns 128 random bits as text; enough that tokens cannot be
// guessed, and URL- and cookie-safe.
func newToken() string { return rand.Text() }

// hashToken is what the database keeps instead of a session token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func (a *Auth) createSession(ctx context.Context, token string, s session) error {
	now := a.now()
	// Expired sessions are otherwise only deleted when their cookie comes
	// back, which it may never do; sweeping here keeps the table bounded
	// without a background job.
	if _, err := a.db.ExecContext(ctx, `DELETE FROM auth_sessions WHERE expires_at <= ?`, millis(now)); err != nil {
		return fmt.Errorf("sweep sessions: %w", err)
	}
	_, err := a.db.ExecContext(ctx, `INSERT INTO auth_sessions
		(token_hash, user_id, sid, id_token, csrf_token, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		hashToken(token), s.userID, s.sid, s.idToken, s.csrf, millis(now), millis(s.expiresAt))
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// lookupSession returns the unexpired session of token; ok is false when
// there is none.
func (a *Auth) lookupSession(ctx context.Context, token string) (s session, ok bool, err error) {
	hash := hashToken(token)
	// Kept while the database is unchanged (every request of a signed-in
	// browser reads it); signing out deletes the row, which moves the
	// database's version, so the next request reads again.
	s, err = a.sessions.Get(ctx, a.db, hash, func() (session, error) {
		s := session{tokenHash: hash}
		var expires int64
		err := a.db.QueryRowContext(ctx, `SELECT user_id, sid, id_token, csrf_token, expires_at
			FROM auth_sessions WHERE token_hash = ?`, hash).
			Scan(&s.userID, &s.sid, &s.idToken, &s.csrf, &expires)
		s.expiresAt = time.UnixMilli(expires)
		return s, err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return session{}, false, nil
	}
	if err != nil {
		return session{}, false, fmt.Errorf("read session: %w", err)
	}
	if !a.now().Before(s.expiresAt) {
		if err := a.deleteSession(ctx, s.tokenHash); err != nil {
			return session{}, false, err
		}
		return session{}, false, nil
	}
	return s, true, nil
}

func (a *Auth) deleteSession(ctx context.Context, tokenHash string) error {
	if _, err := a.db.ExecContext(ctx, `DELETE FROM auth_sessions WHERE token_hash = ?`, tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (a *Auth) createLogin(ctx context.Context, state string, p pendingLogin) error {
	now := a.now()
	if _, err := a.db.ExecContext(ctx, `DELETE FROM auth_logins WHERE expires_at <= ?`, millis(now)); err != nil {
		return fmt.Errorf("sweep logins: %w", err)
	}
	_, err := a.db.ExecContext(ctx, `INSERT INTO auth_logins (state, nonce, verifier, next, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`, state, p.nonce, p.verifier, p.next, millis(now), millis(now.Add(loginTTL)))
	if err != nil {
		return fmt.Errorf("create login: %w", err)
	}
	return nil
}

// takeLogin deletes the pending sign-in of state and returns it; ok is
// false when there is none (unknown, expired or already used). Deleting
// and reading in one statement makes each state usable once even when
// two callbacks race.
func (a *Auth) takeLogin(ctx context.Context, state string) (p pendingLogin, ok bool, err error) {
	err = a.db.QueryRowContext(ctx, `DELETE FROM auth_logins WHERE state = ? AND expires_at > ?
		RETURNING nonce, verifier, next`, state, millis(a.now())).Scan(&p.nonce, &p.verifier, &p.next)
	if errors.Is(err, sql.ErrNoRows) {
		return pendingLogin{}, false, nil
	}
	if err != nil {
		return pendingLogin{}, false, fmt.Errorf("take login: %w", err)
	}
	return p, true, nil
}
