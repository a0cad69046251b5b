// Package secrets holds the suite's one secret key and what is derived from
// it.
//
// Every server of the suite reads the same key file from the shared data
// dir, so values derived from it (the embedded provider's OpenID client
// secrets) agree on every server without being configured or exchanged.
package secrets

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of the secret key in bytes.
const KeySize = 32

// LoadOrCreate reads the key at path, creating it (mode 0600) on first use.
// Two servers starting at once agree: the key is written to a temp file and
// linked into place, so exactly one creation wins and both read its value.
func LoadOrCreate(path string) ([]byte, error) {
	if key, err := load(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secret key dir: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	// os.Link fails if path exists, unlike rename: the first writer wins.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return load(path)
}

func load(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("secret key %s: not a hex key of at least 16 bytes", path)
	}
	return key, nil
}

// Derive returns a stable secret for purpose, as hex.
func Derive(key []byte, purpose string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("atrium:" + purpose))
	return hex.EncodeToString(m.Sum(nil))
}

// ClientSecret is the embedded provider's secret for an OpenID client.
func ClientSecret(key []byte, clientID string) string {
	return Derive(key, "oidc-client-secret:"+clientID)
}
