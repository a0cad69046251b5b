package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/atrium-suite/atrium/shared/config"
)

// API key format: KeyPrefix followed by keyRandomLen characters of
// base62. 40 base62 characters are about 238 random bits.
const (
	KeyPrefix    = "atr_"
	keyRandomLen = 40
	keyLen       = len(KeyPrefix) + keyRandomLen
	// shownPrefixLen characters of the key are kept in clear (APIKey.Prefix)
	// so people can tell their keys apart in lists.
	shownPrefixLen = len(KeyPrefix) + 8
	maxKeyName     = 100
	// lastUsedEvery limits last_used_at updates to one a minute per key:
	// a client calling the API in a loop must not turn every request into
	// a database write.
	lastUsedEvery = time.Minute
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// APIKey describes a key without the key itself, which is never stored.
type APIKey struct {
	ID     string
	UserID string
	Name   string
	// Product is the only product the key works for; "" means every product.
	Product    string
	Prefix     string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
}

// randomBase62 draws n characters uniformly: bytes at or above 248 (the
// largest multiple of 62 that fits a byte) are thrown away, so the modulo
// has no bias.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4+8)
	for len(out) < n {
		rand.Read(buf) // never fails (crypto/rand panics instead)
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

// hashSecret hashes an API key or sign-in token for storage. Both are long
// random strings, not passwords: nobody can guess them, so a slow hash like
// bcrypt would add nothing but CPU time on every request, and a plain
// SHA-256 lets the database look them up by index. A leaked table still
// gives away no usable key.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// wellFormedKey checks the shape before any database work, so junk from
// the network costs nothing.
func wellFormedKey(key string) bool {
	if len(key) != keyLen || !strings.HasPrefix(key, KeyPrefix) {
		return false
	}
	for i := len(KeyPrefix); i < len(key); i++ {
		if strings.IndexByte(base62, key[i]) < 0 {
			return false
		}
	}
	return true
}

func checkProduct(product string) error {
	if product != "" && !slices.Contains(config.Products, product) {
		return fmt.Errorf("%w: product %q is not one of %s (or empty for every product)", ErrInvalid, product, strings.Join(config.Products, ", "))
	}
	return nil
}

// CreateAPIKey makes a new key for a user. The key is returned only here;
// the store keeps its SHA-256. product limits the key to one product ("" for
// all); expiresAt, when not nil, must be in the future. A locked user gets
// ErrLocked.
func (s *Store) CreateAPIKey(ctx context.Context, userID, name, product string, expiresAt *time.Time) (string, APIKey, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", APIKey{}, fmt.Errorf("%w: API key name must not be empty", ErrInvalid)
	case utf8.RuneCountInString(name) > maxKeyName || !utf8.ValidString(name):
		return "", APIKey{}, fmt.Errorf("%w: API key name must be UTF-8 of at most %d characters", ErrInvalid, maxKeyName)
	}
	if err := checkProduct(product); err != nil {
		return "", APIKey{}, err
	}
	now := s.now()
	if expiresAt != nil && !expiresAt.After(now) {
		return "", APIKey{}, fmt.Errorf("%w: API key expiry %s is not in the future", ErrInvalid, expiresAt.Format(time.RFC3339))
	}
	u, err := s.User(ctx, userID)
	if err != nil {
		return "", APIKey{}, err
	}
	if u.Locked {
		return "", APIKey{}, fmt.Errorf("user %q: %w", u.Username, ErrLocked)
	}
	key := KeyPrefix + randomBase62(keyRandomLen)
	k := APIKey{ID: newID(), UserID: userID, Name: name, Product: product, Prefix: key[:shownPrefixLen],
		CreatedAt: fromMS(now.UnixMilli())}
	if expiresAt != nil {
		t := fromMS(expiresAt.UnixMilli())
		k.ExpiresAt = &t
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO api_keys (id, user_id, name, product, prefix, key_hash, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, k.ID, k.UserID, k.Name, k.Product, k.Prefix, hashSecret(key), now.UnixMilli(), toMS(expiresAt))
	if err != nil {
		return "", APIKey{}, fmt.Errorf("create API key: %w", err)
	}
	s.log.Info("API key created", "user", u.Username, "key", k.ID, "product", product)
	return key, k, nil
}

const keyColumns = `k.id, k.user_id, k.name, k.product, k.prefix, k.created_at, k.expires_at, k.last_used_at`

func scanKey(row rowScanner, extra ...any) (APIKey, error) {
	var (
		k                 APIKey
		created           int64
		expires, lastUsed *int64
	)
	err := row.Scan(append([]any{&k.ID, &k.UserID, &k.Name, &k.Product, &k.Prefix, &created, &expires, &lastUsed}, extra...)...)
	if err != nil {
		return APIKey{}, err
	}
	k.CreatedAt = fromMS(created)
	k.ExpiresAt, k.LastUsedAt = fromNullMS(expires), fromNullMS(lastUsed)
	return k, nil
}

// ListAPIKeys returns a user's keys, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID string) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM api_keys k WHERE k.user_id = ? ORDER BY k.created_at, k.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	var keys []APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return keys, nil
}

// RevokeAPIKey deletes one of the user's keys; it stops working at once.
// A key that is not the user's is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, userID, keyID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM api_keys WHERE id = ? AND user_id = ?`, keyID, userID)
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	} else if n == 0 {
		return fmt.Errorf("API key %s: %w", keyID, ErrNotFound)
	}
	s.log.Info("API key revoked", "user_id", userID, "key", keyID)
	return nil
}

// AuthenticateKey returns the key's user for a request to product. An
// unknown or malformed key, and a key limited to another product, are
// ErrBadCredentials (a key for another product is treated as no key at all);
// an expired key is ErrExpired; a locked owner is ErrLocked.
func (s *Store) AuthenticateKey(ctx context.Context, key, product string) (User, APIKey, error) {
	if !wellFormedKey(key) {
		return User{}, APIKey{}, ErrBadCredentials
	}
	keyHash := hashSecret(key)
	u, k, err := s.lookupKey(ctx, keyHash)
	if err != nil {
		return User{}, APIKey{}, err
	}

	now := s.now()
	switch {
	case k.Product != "" && k.Product != product:
		return User{}, APIKey{}, ErrBadCredentials
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return User{}, APIKey{}, fmt.Errorf("API key %s: %w", k.Prefix, ErrExpired)
	case u.Locked:
		return User{}, APIKey{}, fmt.Errorf("user %q: %w", u.Username, ErrLocked)
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUsedEvery {
		nowMS := now.UnixMilli()
		// The condition repeats the check so concurrent requests write once.
		_, err := s.db.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ?
			WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`, nowMS, k.ID, nowMS-lastUsedEvery.Milliseconds())
		if err != nil {
			// Not worth failing the request for.
			s.log.Warn("API key last use not recorded", "key", k.ID, "err", err)
		} else {
			k.LastUsedAt = fromNullMS(&nowMS)
		}
	}
	return u, k, nil
}

// lookupKey reads the key with hash keyHash and its owner. On SQLite the
// answer is kept while the database's data version stays the same, so a
// key used for every request costs a pragma instead of a query, and any
// change (a lock, a revocation, a role change) is seen by the next request
// — one made by another process such as `atrium users lock` by requests
// starting 10 ms after it (db.DB.DataVersion).
// PostgreSQL has no such signal and always asks.
func (s *Store) lookupKey(ctx context.Context, keyHash string) (User, APIKey, error) {
	e, err := s.keys.Get(ctx, s.db, keyHash, func() (keyEntry, error) {
		// The lookup compares hashes, not keys, so its timing says nothing
		// useful about the key.
		row := s.db.QueryRowContext(ctx, `SELECT `+keyColumns+`, `+prefixed("u.", userColumns)+`
			FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?`, keyHash)
		var (
			u                     User
			role                  string
			issuer, subject, hash sql.NullString
			uCreated, uUpdated    int64
		)
		k, err := scanKey(row, &u.ID, &u.Username, &u.Name, &u.Email, &role, &u.Locked, &issuer, &subject, &hash, &uCreated, &uUpdated)
		if errors.Is(err, sql.ErrNoRows) {
			return keyEntry{}, ErrBadCredentials
		}
		if err != nil {
			return keyEntry{}, fmt.Errorf("authenticate API key: %w", err)
		}
		u.Role, u.Issuer, u.Subject, u.HasPassword = Role(role), issuer.String, subject.String, hash.String != ""
		u.CreatedAt, u.UpdatedAt = fromMS(uCreated), fromMS(uUpdated)
		return keyEntry{u: u, k: k}, nil
	})
	return e.u, e.k, err
}

type keyEntry struct {
	u User
	k APIKey
}

// prefixed qualifies each column of a comma-separated list.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}
