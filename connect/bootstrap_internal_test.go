package connect

import (
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestCheckBootstrapToken(t *testing.T) {
	secret := []byte(strings.Repeat("k", 64)) // long enough for HS512 too
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	sign := func(key []byte, alg jose.SignatureAlgorithm, claims map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := func() map[string]any {
		return map[string]any{"iss": "rsconnect-python", "aud": "rsconnect", "scope": "bootstrap",
			"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix()}
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	cases := []struct {
		name  string
		token string
		ok    bool
	}{
		{"as rsconnect signs it", sign(secret, jose.HS256, good()), true},
		{"other secret", sign([]byte(strings.Repeat("x", 64)), jose.HS256, good()), false},
		{"HS512", sign(secret, jose.HS512, good()), false},
		{"expired", sign(secret, jose.HS256, with("exp", now.Add(-5*time.Minute).Unix())), false},
		{"no expiry", sign(secret, jose.HS256, with("exp", nil)), false},
		{"other issuer", sign(secret, jose.HS256, with("iss", "someone")), false},
		{"other audience", sign(secret, jose.HS256, with("aud", "connect")), false},
		{"other scope", sign(secret, jose.HS256, with("scope", "admin")), false},
		{"unsigned", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJyc2Nvbm5lY3QtcHl0aG9uIn0.", false},
		{"garbage", "not a token", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBootstrapToken(tc.token, secret, now)
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestBootstrapFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if c, err := bootstrapFromEnv(env(nil)); err != nil || c.enabled {
		t.Errorf("off by default: %+v %v", c, err)
	}
	if _, err := bootstrapFromEnv(env(map[string]string{"CONNECT_BOOTSTRAP_ENABLED": "true", "CONNECT_BOOTSTRAP_SECRETKEY": "c2hvcnQ="})); err == nil {
		t.Error("accepted a short secret")
	}
	if _, err := bootstrapFromEnv(env(map[string]string{"CONNECT_BOOTSTRAP_ENABLED": "true", "CONNECT_BOOTSTRAP_SECRETKEY": "!!"})); err == nil {
		t.Error("accepted a secret that is not base64")
	}
}
