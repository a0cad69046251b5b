package identity

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/atrium-suite/atrium/shared/db"
)

const rsaBits = 2048

// signingKey is one RSA key; it satisfies both op.SigningKey (private
// half, for signing) and, through publicKey, op.Key (for the JWKS).
type signingKey struct {
	id         string
	generation int64
	priv       *rsa.PrivateKey
	created    time.Time
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.priv }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.priv.PublicKey }

// keyring keeps the signing keys in the database, so that every identity
// server of a cluster signs with the same key and serves the same JWKS,
// and rotates them: the newest key signs until it is rotation old; a
// retired key is still published for retain, so tokens it signed keep
// verifying until they expire.
type keyring struct {
	db       *db.DB
	now      func() time.Time
	rotation time.Duration
	retain   time.Duration
	aead     cipher.AEAD
	log      *slog.Logger

	mu      sync.Mutex
	current *signingKey
	parsed  map[string]*signingKey // decrypted keys by id; decrypting and parsing RSA keys is not free
}

func newKeyring(d *db.DB, secret [32]byte, now func() time.Time, rotation, retain time.Duration, log *slog.Logger) (*keyring, error) {
	// A key of its own, so the signing keys' seal never shares a key with
	// the op library's token encryption.
	sealKey, err := hkdf.Key(sha256.New, secret[:], nil, "atrium identity signing keys", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &keyring{db: d, now: now, rotation: rotation, retain: retain, aead: aead, log: log, parsed: map[string]*signingKey{}}, nil
}

// signing returns the key to sign with, rotating when the newest is due.
func (r *keyring) signing(ctx context.Context) (*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if r.current != nil && now.Before(r.current.created.Add(r.rotation)) {
		return r.current, nil
	}
	keys, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 || !now.Before(keys[0].created.Add(r.rotation)) {
		var gen int64 = 1
		if len(keys) > 0 {
			gen = keys[0].generation + 1
		}
		if err := r.add(ctx, gen, now); err != nil {
			return nil, err
		}
		if keys, err = r.load(ctx); err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return nil, errors.New("signing key vanished after it was added")
		}
	}
	r.current = keys[0]
	return r.current, nil
}

// published returns the keys for the JWKS: the newest, plus retired ones
// whose successor is younger than retain. It reads the database every
// time, so a key another server has just rotated in is served at once.
func (r *keyring) published(ctx context.Context) ([]*signingKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	now := r.now()
	var out []*signingKey
	var stale []string
	for i, k := range keys {
		if i == 0 || now.Before(keys[i-1].created.Add(r.retain)) {
			out = append(out, k)
		} else {
			stale = append(stale, k.id)
		}
	}
	for _, id := range stale {
		// Nobody can need it any more; dropping it keeps the table and
		// the JWKS small. Failing to is harmless.
		if _, err := r.db.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = ?`, id); err != nil {
			r.log.Warn("old signing key not deleted", "kid", id, "err", err)
		} else {
			delete(r.parsed, id)
		}
	}
	return out, nil
}

// load reads every key, newest first. Callers hold r.mu.
func (r *keyring) load(ctx context.Context) ([]*signingKey, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id, generation, private_key, created_at FROM signing_keys ORDER BY generation DESC`)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	defer rows.Close()
	var keys []*signingKey
	for rows.Next() {
		var (
			id, sealed string
			gen, ms    int64
		)
		if err := rows.Scan(&id, &gen, &sealed, &ms); err != nil {
			return nil, fmt.Errorf("read signing keys: %w", err)
		}
		k := r.parsed[id]
		if k == nil {
			priv, err := r.open(id, sealed)
			if err != nil {
				return nil, err
			}
			k = &signingKey{id: id, generation: gen, priv: priv, created: time.UnixMilli(ms).UTC()}
			r.parsed[id] = k
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	return keys, nil
}

// add generates a key of generation gen. If another server added that
// generation first, its key wins and this one is dropped.
func (r *keyring) add(ctx context.Context, gen int64, now time.Time) error {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	var kid [12]byte
	rand.Read(kid[:])
	id := hex.EncodeToString(kid[:])
	_, err = r.db.ExecContext(ctx, `INSERT INTO signing_keys (id, generation, algorithm, private_key, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (generation) DO NOTHING`, id, gen, string(jose.RS256), r.seal(id, der), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("store signing key: %w", err)
	}
	r.log.Info("new signing key", "kid", id, "generation", gen)
	return nil
}

// seal encrypts a private key; the key id is the additional data, so a
// sealed key copied to another row does not open.
func (r *keyring) seal(id string, der []byte) string {
	nonce := make([]byte, r.aead.NonceSize(), r.aead.NonceSize()+len(der)+r.aead.Overhead())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(r.aead.Seal(nonce, nonce, der, []byte(id)))
}

func (r *keyring) open(id, sealed string) (*rsa.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < r.aead.NonceSize() {
		return nil, fmt.Errorf("signing key %s: not a sealed key", id)
	}
	der, err := r.aead.Open(nil, b[:r.aead.NonceSize()], b[r.aead.NonceSize():], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: cannot decrypt it; was the suite's secret key replaced? (%w)", id, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", id, err)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an RSA key", id)
	}
	return priv, nil
}
