package connect

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/config"
)

// bootstrapConfig is Posit Connect's bootstrap switch, read from the same
// environment variables Connect reads, so automation written for Connect
// (rsconnect bootstrap, with-connect) works unchanged.
type bootstrapConfig struct {
	enabled bool
	secret  []byte
}

func bootstrapFromEnv(getenv func(string) string) (bootstrapConfig, error) {
	on, _ := strconv.ParseBool(getenv("CONNECT_BOOTSTRAP_ENABLED"))
	if !on {
		return bootstrapConfig{}, nil
	}
	raw := strings.TrimSpace(getenv("CONNECT_BOOTSTRAP_SECRETKEY"))
	secret, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(secret) < 32 {
		return bootstrapConfig{}, fmt.Errorf("CONNECT_BOOTSTRAP_SECRETKEY must be a base64 key of at least 32 bytes")
	}
	return bootstrapConfig{enabled: true, secret: secret}, nil
}

// bootstrapClaims are what rsconnect-python signs.
type bootstrapClaims struct {
	jwt.Claims
	Scope string `json:"scope"`
}

// bootstrap is POST /__api__/v1/experimental/bootstrap: with a JWT signed
// by the bootstrap secret it mints the first administrator's API key, once.
// 404 when bootstrapping is off, 401 for a bad token, 403 once an
// administrator already has a key.
func (s *Server) bootstrap(c *gin.Context) {
	if !s.boot.enabled {
		c.Error(apiError(http.StatusNotFound, 0, "bootstrapping is not enabled (CONNECT_BOOTSTRAP_ENABLED)"))
		return
	}
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Connect-Bootstrap ")
	if !ok {
		c.Error(apiError(http.StatusUnauthorized, codeInvalidLogin, "bootstrap needs Authorization: Connect-Bootstrap <token>"))
		return
	}
	if err := checkBootstrapToken(token, s.boot.secret, time.Now()); err != nil {
		c.Error(apiError(http.StatusUnauthorized, codeInvalidLogin, "bootstrap token refused: %v", err))
		return
	}
	ctx := c.Request.Context()
	provisioned, err := adminHasKey(ctx, s.Accounts)
	if err != nil {
		c.Error(err)
		return
	}
	if provisioned {
		c.Error(apiError(http.StatusForbidden, 0, "this server is already bootstrapped: an administrator has an API key"))
		return
	}
	admin, err := s.Accounts.UserByUsername(ctx, accounts.AdminUsername)
	if err != nil {
		// Connect alone (no embedded provider yet): the administrator is
		// created without a password; they sign in through the provider
		// once it runs, and automation uses the key.
		admin, err = s.Accounts.AddUser(ctx, accounts.NewUser{Username: accounts.AdminUsername, Role: accounts.RoleAdmin})
		if err != nil {
			c.Error(err)
			return
		}
	}
	key, _, err := s.Accounts.CreateAPIKey(ctx, admin.ID, "bootstrap", config.Connect, nil)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"api_key": key})
}

func checkBootstrapToken(token string, secret []byte, now time.Time) error {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		return fmt.Errorf("not an HS256 JWT")
	}
	var cl bootstrapClaims
	if err := tok.Claims(secret, &cl); err != nil {
		return fmt.Errorf("bad signature")
	}
	if err := cl.ValidateWithLeeway(jwt.Expected{Issuer: "rsconnect-python", AnyAudience: jwt.Audience{"rsconnect"}, Time: now}, time.Minute); err != nil {
		return err
	}
	if cl.Expiry == nil {
		return fmt.Errorf("the token has no expiry")
	}
	if cl.Scope != "bootstrap" {
		return fmt.Errorf("scope %q is not bootstrap", cl.Scope)
	}
	return nil
}

// adminHasKey reports whether any administrator has an API key.
func adminHasKey(ctx context.Context, dir *accounts.Store) (bool, error) {
	users, err := dir.ListUsers(ctx)
	if err != nil {
		return false, err
	}
	for _, u := range users {
		if u.Role != accounts.RoleAdmin {
			continue
		}
		keys, err := dir.ListAPIKeys(ctx, u.ID)
		if err != nil {
			return false, err
		}
		if len(keys) > 0 {
			return true, nil
		}
	}
	return false, nil
}
