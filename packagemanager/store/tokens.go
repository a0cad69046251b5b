package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// ScopeSourcesWrite lets a token upload to its sources.
const ScopeSourcesWrite = "sources:write"

// TokenPrefix starts every Package Manager token, so a leaked one is
// recognisable.
const TokenPrefix = "atrpm_"

// Token is a scoped Package Manager token (its secret is never stored).
type Token struct {
	ID, Scope, Description string
	Sources                []string // empty: every source
	CreatedAt              time.Time
	ExpiresAt              *time.Time
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// CreateToken makes a token for scope on sources (which must exist) and
// returns its secret, shown once.
func (s *Store) CreateToken(ctx context.Context, scope string, sources []string, description string, expiresAt *time.Time) (string, Token, error) {
	if scope != ScopeSourcesWrite {
		return "", Token{}, invalid("scope %q is not supported (supported: %s; repositories are read without a token)", scope, ScopeSourcesWrite)
	}
	for _, name := range sources {
		if _, err := s.Source(ctx, name); err != nil {
			return "", Token{}, err
		}
	}
	b := make([]byte, 40)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(base62))))
		if err != nil {
			return "", Token{}, err
		}
		b[i] = base62[n.Int64()]
	}
	secret := TokenPrefix + string(b)
	tok := Token{ID: newID(), Scope: scope, Sources: sources, Description: description, CreatedAt: fromMS(ms(s.now())), ExpiresAt: expiresAt}
	var exp any
	if expiresAt != nil {
		exp = ms(*expiresAt)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (id, token_hash, scope, sources, description, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		tok.ID, hashToken(secret), scope, strings.Join(sources, ","), description, ms(tok.CreatedAt), exp)
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	return secret, tok, nil
}

// ErrTokenDenied is a token that is unknown, expired, or not for this.
var ErrTokenDenied = errors.New("token does not allow this")

// AuthorizeToken checks that secret is a live token with scope on source.
func (s *Store) AuthorizeToken(ctx context.Context, secret, scope, source string) error {
	if !strings.HasPrefix(secret, TokenPrefix) {
		return ErrTokenDenied
	}
	var tokScope, sources string
	var exp sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT scope, sources, expires_at FROM tokens WHERE token_hash = ?`, hashToken(secret)).Scan(&tokScope, &sources, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrTokenDenied
	}
	if err != nil {
		return err
	}
	if exp.Valid && s.now().UnixMilli() >= exp.Int64 {
		return fmt.Errorf("token expired: %w", ErrTokenDenied)
	}
	if tokScope != scope || (sources != "" && !slices.Contains(strings.Split(sources, ","), source)) {
		return ErrTokenDenied
	}
	return nil
}
