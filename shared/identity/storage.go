package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/db"
)

// Lifetimes of the protocol's records.
const (
	authRequestLifetime = 10 * time.Minute
	codeLifetime        = time.Minute
	accessTokenLifetime = time.Hour
	idTokenLifetime     = time.Hour
)

// errUnsupported answers the grants and lookups this provider does not
// offer (refresh tokens, JWT profile, client credentials).
var errUnsupported = oidc.ErrRequestNotSupported().WithDescription("not supported by Atrium's provider")

// storage is the op.Storage behind the provider: protocol records in the
// identity schema, users and sign-ins in accounts.
type storage struct {
	db       *db.DB
	accounts *accounts.Store
	clients  map[string]*client
	keys     *keyring
	now      func() time.Time
	log      *slog.Logger
	provider *Provider // for the cookie side of end_session
}

var (
	_ op.Storage                        = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*storage)(nil)
)

func hashCode(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// authRequest is one stored authorization request; it implements
// op.AuthRequest.
type authRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	prompt                                  []string
	maxAge                                  *time.Duration
	loginHint                               string
	codeChallenge, codeChallengeMethod      string
	userID, signInID                        string
	authTime                                time.Time
	done                                    bool
}

func (a *authRequest) GetID() string         { return a.id }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAudience() []string { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.authTime
}
func (a *authRequest) GetClientID() string { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	return &oidc.CodeChallenge{Challenge: a.codeChallenge, Method: oidc.CodeChallengeMethod(a.codeChallengeMethod)}
}
func (a *authRequest) GetNonce() string                   { return a.nonce }
func (a *authRequest) GetRedirectURI() string             { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.responseMode }
func (a *authRequest) GetScopes() []string                { return a.scopes }
func (a *authRequest) GetState() string                   { return a.state }
func (a *authRequest) GetSubject() string                 { return a.userID }
func (a *authRequest) Done() bool                         { return a.done }

// GetAMR says how the user authenticated: by password, the only way.
func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}

// LogValue keeps secrets (state, nonce, challenge) out of op's logs.
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.id), slog.String("client_id", a.clientID), slog.String("redirect_uri", a.redirectURI))
}

func (a *authRequest) hasPrompt(p string) bool { return slices.Contains(a.prompt, p) }

const authRequestColumns = `id, client_id, redirect_uri, state, nonce, scopes, response_type, response_mode, prompt, max_age,
	login_hint, code_challenge, code_challenge_method, user_id, sign_in_id, auth_time, done`

func scanAuthRequest(row interface{ Scan(...any) error }) (*authRequest, error) {
	var (
		a                      authRequest
		scopes, prompt         string
		responseType, respMode string
		maxAge, authTime       *int64
		userID, signInID       sql.NullString
	)
	err := row.Scan(&a.id, &a.clientID, &a.redirectURI, &a.state, &a.nonce, &scopes, &responseType, &respMode, &prompt, &maxAge,
		&a.loginHint, &a.codeChallenge, &a.codeChallengeMethod, &userID, &signInID, &authTime, &a.done)
	if err != nil {
		return nil, err
	}
	a.scopes, a.prompt = strings.Fields(scopes), strings.Fields(prompt)
	a.responseType, a.responseMode = oidc.ResponseType(responseType), oidc.ResponseMode(respMode)
	if maxAge != nil {
		d := time.Duration(*maxAge) * time.Second
		a.maxAge = &d
	}
	a.userID, a.signInID = userID.String, signInID.String
	if authTime != nil {
		a.authTime = time.UnixMilli(*authTime).UTC()
	}
	return &a, nil
}

// errAuthRequestGone is what the login page and callback see for an
// unknown or expired request.
var errAuthRequestGone = errors.New("auth request not found or expired")

// CreateAuthRequest stores a validated request. PKCE with S256 is
// required: our clients are confidential, but PKCE also stops a code
// that leaks (logs, referrers) from being redeemed by anyone else, and
// every client we register supports it. "openid" is required too, since an
// ID token is the point.
func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE is required: send code_challenge with code_challenge_method=S256")
	}
	if !slices.Contains(req.Scopes, oidc.ScopeOpenID) {
		return nil, oidc.ErrInvalidScope().WithDescription("the openid scope is required")
	}
	now := s.now()
	var maxAge *int64
	if req.MaxAge != nil {
		v := int64(*req.MaxAge)
		maxAge = &v
	}
	a := &authRequest{
		id: uuid.NewString(), clientID: req.ClientID, redirectURI: req.RedirectURI, state: req.State, nonce: req.Nonce,
		scopes: req.Scopes, responseType: req.ResponseType, responseMode: req.ResponseMode, prompt: req.Prompt,
		loginHint: req.LoginHint, codeChallenge: req.CodeChallenge, codeChallengeMethod: string(req.CodeChallengeMethod),
	}
	if maxAge != nil {
		d := time.Duration(*maxAge) * time.Second
		a.maxAge = &d
	}
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		// Sweep what has expired: no background job needed, and
		// authorizations are rare enough for the cost not to matter.
		if _, err := tx.ExecContext(ctx, `DELETE FROM auth_requests WHERE expires_at < ?`, now.UnixMilli()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE expires_at < ?`, now.UnixMilli()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO auth_requests (id, client_id, redirect_uri, state, nonce, scopes, response_type,
			response_mode, prompt, max_age, login_hint, code_challenge, code_challenge_method, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.id, a.clientID, a.redirectURI, a.state, a.nonce, strings.Join(a.scopes, " "), string(a.responseType),
			string(a.responseMode), strings.Join(a.prompt, " "), maxAge, a.loginHint, a.codeChallenge, a.codeChallengeMethod,
			now.UnixMilli(), now.Add(authRequestLifetime).UnixMilli())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store auth request: %w", err)
	}
	return a, nil
}

// AuthRequestByID returns an unexpired request.
func (s *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return s.authRequest(ctx, id)
}

func (s *storage) authRequest(ctx context.Context, id string) (*authRequest, error) {
	if id == "" || len(id) > 64 {
		return nil, errAuthRequestGone
	}
	a, err := scanAuthRequest(s.db.QueryRowContext(ctx, `SELECT `+authRequestColumns+` FROM auth_requests WHERE id = ? AND expires_at > ?`,
		id, s.now().UnixMilli()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errAuthRequestGone
	}
	if err != nil {
		return nil, fmt.Errorf("read auth request: %w", err)
	}
	return a, nil
}

// AuthRequestByCode redeems a code: it is cleared in the same statement
// that finds it, so a code works once even when two token requests race,
// and a replayed code finds nothing.
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	a, err := scanAuthRequest(s.db.QueryRowContext(ctx, `UPDATE auth_requests SET code_hash = NULL
		WHERE code_hash = ? AND code_expires_at > ? AND done RETURNING `+authRequestColumns, hashCode(code), s.now().UnixMilli()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errors.New("code unknown, used or expired")
	}
	if err != nil {
		return nil, fmt.Errorf("redeem code: %w", err)
	}
	return a, nil
}

// SaveAuthCode records the one code of a completed request.
func (s *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	now := s.now()
	res, err := s.db.ExecContext(ctx, `UPDATE auth_requests SET code_hash = ?, code_expires_at = ?, code_issued = ?
		WHERE id = ? AND done AND NOT code_issued AND expires_at > ?`,
		hashCode(code), now.Add(codeLifetime).UnixMilli(), true, id, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("save code: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("save code: %w", err)
	} else if n == 0 {
		return oidc.ErrInvalidRequest().WithDescription("this sign-in was already completed or has expired; sign in again")
	}
	return nil
}

func (s *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM auth_requests WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete auth request: %w", err)
	}
	return nil
}

// completeAuthRequest marks a request as authenticated by a user in a
// provider sign-in.
func (s *storage) completeAuthRequest(ctx context.Context, id, userID, signInID string, authTime time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE auth_requests SET user_id = ?, sign_in_id = ?, auth_time = ?, done = ?
		WHERE id = ? AND expires_at > ? AND NOT code_issued`, userID, signInID, authTime.UnixMilli(), true, id, s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("complete auth request: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("complete auth request: %w", err)
	} else if n == 0 {
		return errAuthRequestGone
	}
	return nil
}

// CreateAccessToken issues an opaque access token for a redeemed code,
// unless the sign-in ended (or its user was locked) in the meantime.
func (s *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	a, ok := req.(*authRequest)
	if !ok {
		return "", time.Time{}, errUnsupported
	}
	if active, err := s.accounts.SignInActive(ctx, a.signInID); err != nil {
		return "", time.Time{}, fmt.Errorf("check sign-in: %w", err)
	} else if !active {
		return "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the sign-in has ended")
	}
	now := s.now()
	id, exp := uuid.NewString(), now.Add(accessTokenLifetime)
	_, err := s.db.ExecContext(ctx, `INSERT INTO access_tokens (id, client_id, user_id, sign_in_id, scopes, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, id, a.clientID, a.userID, a.signInID, strings.Join(a.scopes, " "), now.UnixMilli(), exp.UnixMilli())
	if err != nil {
		return "", time.Time{}, fmt.Errorf("store access token: %w", err)
	}
	return id, exp, nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errUnsupported
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// TerminateSession is op's fallback when the request itself is not
// available; end_session goes through TerminateSessionFromRequest (see
// endsession.go), so this only serves other callers: end every sign-in of
// the user.
func (s *storage) TerminateSession(ctx context.Context, userID, _ string) error {
	if userID == "" {
		return nil
	}
	return s.accounts.EndSignInsOfUser(ctx, userID)
}

// RevokeToken deletes an access token. Unknown tokens, and refresh tokens
// (there are none), count as revoked, as RFC 7009 asks.
func (s *storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	if userID == "" {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM access_tokens WHERE id = ? AND client_id = ?`, tokenOrID, clientID); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

func (s *storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return s.keys.signing(ctx)
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(ctx context.Context) ([]op.Key, error) {
	keys, err := s.keys.published(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]op.Key, len(keys))
	for i, k := range keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	return c, nil
}

// AuthorizeClientIDSecret compares hashes in constant time, so the time
// taken says nothing about how much of a guessed secret was right.
func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok {
		return fmt.Errorf("unknown client %q", id)
	}
	want, got := sha256.Sum256([]byte(c.secret)), sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		return fmt.Errorf("wrong secret for client %q", id)
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does
// the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims.
func (s *storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	sid := ""
	if a, ok := req.(*authRequest); ok {
		sid = a.signInID
	}
	return s.setUserinfo(ctx, info, req.GetSubject(), sid)
}

// SetUserinfoFromToken answers the userinfo endpoint.
func (s *storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.accessToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	return s.setUserinfo(ctx, info, t.userID, t.signInID)
}

// SetIntrospectionFromToken answers token introspection for the client the
// token was issued to.
func (s *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	t, err := s.accessToken(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if t.clientID != clientID {
		return errors.New("token belongs to another client")
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(ctx, info, t.userID, t.signInID); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.Audience = []string{t.clientID}
	resp.Expiration = oidc.FromTime(t.expires)
	resp.IssuedAt = oidc.FromTime(t.created)
	return nil
}

// setUserinfo writes the claims products rely on. They go into every ID
// token whatever the scopes, because every product needs them and all
// clients are the suite's own; "role" is for information only (products
// read the role from accounts, which an admin can change at any time).
func (s *storage) setUserinfo(ctx context.Context, info *oidc.UserInfo, userID, sid string) error {
	u, err := s.accounts.User(ctx, userID)
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	if u.Locked {
		return fmt.Errorf("userinfo: %w", accounts.ErrLocked)
	}
	info.Subject = u.ID
	info.PreferredUsername = u.Username
	info.Name = u.Name
	info.Email = u.Email
	info.UpdatedAt = oidc.FromTime(u.UpdatedAt)
	info.AppendClaims("role", string(u.Role))
	if sid != "" {
		info.AppendClaims("sid", sid)
	}
	return nil
}

type accessToken struct {
	clientID, userID, signInID string
	scopes                     []string
	created, expires           time.Time
}

// accessToken returns a token that is unexpired and whose sign-in is still
// active: signing out ends the access tokens it produced.
func (s *storage) accessToken(ctx context.Context, id, subject string) (*accessToken, error) {
	var (
		t                accessToken
		scopes           string
		created, expires int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT client_id, user_id, sign_in_id, scopes, created_at, expires_at FROM access_tokens WHERE id = ?`, id).
		Scan(&t.clientID, &t.userID, &t.signInID, &scopes, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errors.New("access token unknown")
	}
	if err != nil {
		return nil, fmt.Errorf("read access token: %w", err)
	}
	t.scopes, t.created, t.expires = strings.Fields(scopes), time.UnixMilli(created).UTC(), time.UnixMilli(expires).UTC()
	switch {
	case t.userID != subject:
		return nil, errors.New("access token subject mismatch")
	case !s.now().Before(t.expires):
		return nil, errors.New("access token expired")
	}
	if active, err := s.accounts.SignInActive(ctx, t.signInID); err != nil {
		return nil, err
	} else if !active {
		return nil, errors.New("access token's sign-in has ended")
	}
	return &t, nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errUnsupported
}

func (s *storage) Health(ctx context.Context) error {
	if err := s.db.Ping(ctx); err != nil {
		return err
	}
	return s.accounts.Ping(ctx)
}

// client is a registered product; it implements op.Client.
type client struct {
	id, secret, name       string
	redirectURIs, logoutTo []string
	loginURL               func(authRequestID string) string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return c.logoutTo }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string            { return c.loginURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return idTokenLifetime }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
