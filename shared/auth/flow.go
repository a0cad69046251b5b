package auth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gin-gonic/gin"
	"golang.org/x/oauth2"

	"github.com/atrium-suite/atrium/shared/httpx"
)

// errState is the answer to any callback that does not belong to a sign-in
// this browser started here: forged, replayed, expired or from another tab.
var errState = httpx.BadRequest("sign-in state does not match; start again")

func (a *Auth) setCookie(c *gin.Context, name, value, path string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (a *Auth) clearCookie(c *gin.Context, name, path string) {
	a.setCookie(c, name, "", path, -1)
}

// login starts the authorization-code flow.
func (a *Auth) login(c *gin.Context) {
	next := safeNext(c.Query("next"))
	if sessionOf(c) != nil {
		c.Redirect(http.StatusFound, next) // already signed in
		return
	}
	ctx := c.Request.Context()
	p, err := a.provider(ctx)
	if err != nil {
		c.Error(&httpx.Error{Status: http.StatusServiceUnavailable,
			Msg: "the sign-in provider " + a.cfg.Issuer + " cannot be reached; try again in a moment", Err: err})
		return
	}
	state := newToken()
	pl := pendingLogin{nonce: newToken(), verifier: oauth2.GenerateVerifier(), next: next}
	if err := a.createLogin(ctx, state, pl); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	// The cookie ties the state to this browser: a callback URL someone
	// else started (login CSRF, session fixation) fails the state check.
	a.setCookie(c, a.loginCk, state, PathPrefix+"/", int(loginTTL.Seconds()))
	c.Redirect(http.StatusFound, p.oauth.AuthCodeURL(state, oidc.Nonce(pl.nonce), oauth2.S256ChallengeOption(pl.verifier)))
}

// providerError turns the error parameters of a callback into what the
// person sees. Refusals are theirs to act on; anything else is the
// provider's or the configuration's problem.
func providerError(code, desc string) *httpx.Error {
	status := http.StatusBadGateway
	switch code {
	case "access_denied", "login_required", "consent_required", "interaction_required", "account_selection_required":
		status = http.StatusForbidden
	}
	msg := "the sign-in provider refused: " + truncate(code, 64)
	if desc != "" {
		msg += " (" + truncate(desc, 200) + ")"
	}
	return &httpx.Error{Status: status, Msg: msg}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// idClaims are the ID-token claims a sign-in uses.
type idClaims struct {
	Subject  string `json:"sub"`
	SID      string `json:"sid"`
	Username string `json:"preferred_username"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	AZP      string `json:"azp"`
}

func (a *Auth) callback(c *gin.Context) {
	ctx := c.Request.Context()
	q := c.Request.URL.Query()
	state := q.Get("state")
	ck, _ := c.Request.Cookie(a.loginCk)
	if state == "" || ck == nil || subtle.ConstantTimeCompare([]byte(state), []byte(ck.Value)) != 1 {
		c.Error(errState)
		return
	}
	pl, ok, err := a.takeLogin(ctx, state)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	a.clearCookie(c, a.loginCk, PathPrefix+"/")
	if !ok {
		c.Error(errState)
		return
	}
	if code := q.Get("error"); code != "" {
		a.log.Info("sign-in refused by the provider", "error", code, "description", q.Get("error_description"))
		c.Error(providerError(code, q.Get("error_description")))
		return
	}
	code := q.Get("code")
	if code == "" {
		c.Error(httpx.BadRequest("the sign-in provider sent no authorization code; start again"))
		return
	}
	p, err := a.provider(ctx)
	if err != nil {
		c.Error(&httpx.Error{Status: http.StatusServiceUnavailable,
			Msg: "the sign-in provider " + a.cfg.Issuer + " cannot be reached; try again in a moment", Err: err})
		return
	}
	tok, err := p.oauth.Exchange(a.clientContext(ctx), code, oauth2.VerifierOption(pl.verifier))
	if err != nil {
		c.Error(&httpx.Error{Status: http.StatusBadGateway,
			Msg: "the sign-in provider did not accept the authorization code; start again", Err: err})
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		c.Error(&httpx.Error{Status: http.StatusBadGateway, Msg: "the sign-in provider sent no ID token"})
		return
	}
	claims, groups, err := a.verify(c, p, rawID, tok.AccessToken, pl.nonce)
	if err != nil {
		a.log.Warn("sign-in refused: bad ID token", "err", err)
		c.Error(&httpx.Error{Status: http.StatusUnauthorized,
			Msg: "the sign-in could not be verified; start again", Err: err})
		return
	}

	u, err := a.userFor(c, claims, groups)
	switch {
	case errors.Is(err, ErrUnknownUser):
		c.Error(&httpx.Error{Status: http.StatusForbidden, Msg: "This account does not exist here.", Err: err})
		return
	case err != nil:
		c.Error(httpx.Internal(err))
		return
	case u.Locked:
		a.log.Info("sign-in refused: user is locked", "user_id", u.ID, "username", u.Username)
		c.Error(httpx.Errorf(http.StatusForbidden, "This account is locked."))
		return
	}

	token := newToken()
	err = a.createSession(ctx, token, session{
		userID: u.ID, sid: claims.SID, idToken: rawID, csrf: newToken(),
		expiresAt: a.now().Add(a.cfg.SessionLifetime),
	})
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	a.setCookie(c, a.sessionCk, token, "/", int(a.cfg.SessionLifetime.Seconds()))
	a.log.Info("signed in", "user_id", u.ID, "username", u.Username, "role", u.Role)
	c.Redirect(http.StatusFound, pl.next)
}

// verify checks the ID token: signature, issuer, audience and expiry (by
// go-oidc), then what go-oidc leaves to the client: nonce, authorized
// party, and the access-token hash when present.
func (a *Auth) verify(c *gin.Context, p *provider, rawID, accessToken, nonce string) (idClaims, []string, error) {
	var claims idClaims
	idt, err := p.verifier.Verify(a.clientContext(c.Request.Context()), rawID)
	if err != nil {
		return claims, nil, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return claims, nil, errors.New("nonce does not match")
	}
	if err := idt.Claims(&claims); err != nil {
		return claims, nil, fmt.Errorf("read claims: %w", err)
	}
	if claims.Subject == "" {
		return claims, nil, errors.New("no sub claim")
	}
	// OpenID Connect Core 3.1.3.7: with several audiences azp must be
	// present, and when present it must be us.
	if (len(idt.Audience) > 1 && claims.AZP == "") || (claims.AZP != "" && claims.AZP != a.cfg.ClientID) {
		return claims, nil, fmt.Errorf("authorized party %q is not this client", claims.AZP)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return claims, nil, err
		}
	}
	var groups []string
	if a.mapsGroups {
		var all map[string]json.RawMessage
		if err := idt.Claims(&all); err != nil {
			return claims, nil, fmt.Errorf("read claims: %w", err)
		}
		groups = parseGroups(all[a.cfg.GroupsClaim])
	}
	return claims, groups, nil
}

// parseGroups reads a groups claim: a list of strings, or a single string
// as some providers send for one group. Anything else is no groups.
func parseGroups(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	return nil
}

// mapRole is the role an external user's groups give them.
func (a *Auth) mapRole(groups []string) string {
	in := func(names []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(names, g) })
	}
	switch {
	case in(a.cfg.AdminGroups):
		return RoleAdmin
	case in(a.cfg.PublisherGroups):
		return RolePublisher
	}
	return a.cfg.DefaultRole
}

// userFor finds the directory user of a verified sign-in.
func (a *Auth) userFor(c *gin.Context, claims idClaims, groups []string) (User, error) {
	ctx := c.Request.Context()
	if a.cfg.Embedded {
		return a.dir.User(ctx, claims.Subject)
	}
	username := claims.Username
	if username == "" {
		username = claims.Email
	}
	if username == "" {
		username = claims.Subject
	}
	var role *string
	if a.mapsGroups {
		r := a.mapRole(groups)
		role = &r
	}
	u, err := a.dir.UpsertExternal(ctx, a.cfg.Issuer, claims.Subject, username, claims.Name, claims.Email, role)
	if err != nil {
		return User{}, fmt.Errorf("record external user: %w", err)
	}
	return u, nil
}

// logout ends the session here and then at the provider, which ends the
// person's sign-in everywhere (for the embedded provider, every product's
// session, through SignInActive).
func (a *Auth) logout(c *gin.Context) {
	s := sessionOf(c)
	a.clearCookie(c, a.sessionCk, "/")
	if s == nil {
		c.Redirect(http.StatusSeeOther, "/")
		return
	}
	if err := a.deleteSession(c.Request.Context(), s.tokenHash); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	a.log.Info("signed out", "user_id", s.userID)
	target := "/"
	// A provider that cannot be reached now must not keep the person
	// signed in here: they are signed out of this product at least.
	if p, err := a.provider(c.Request.Context()); err != nil {
		a.log.Warn("sign-out: provider unreachable; signed out of this product only", "err", err)
	} else if p.endSession != "" {
		if u, err := url.Parse(p.endSession); err == nil {
			q := u.Query()
			q.Set("id_token_hint", s.idToken)
			q.Set("client_id", a.cfg.ClientID)
			q.Set("post_logout_redirect_uri", a.cfg.PublicURL+"/")
			u.RawQuery = q.Encode()
			target = u.String()
		}
	}
	c.Redirect(http.StatusSeeOther, target)
}

// me describes the caller. It is an API, so anonymous browsers get JSON
// too, not a redirect or an error page.
func (a *Auth) me(c *gin.Context) {
	u, ok := CurrentUser(c)
	if !ok {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"code": 0, "error": "sign in required", "payload": nil})
		return
	}
	c.JSON(http.StatusOK, gin.H{"id": u.ID, "username": u.Username, "name": u.Name, "email": u.Email, "role": u.Role})
}

// maxNext bounds the return path kept with a pending sign-in.
const maxNext = 2048

// safeNext returns next if it is a path on this host, else "/". It is the
// defence against open redirects through ?next=: "//evil" and "/\evil"
// are host-relative URLs to another host in browsers, and browsers drop
// tabs and newlines before parsing, so all of these are refused.
func safeNext(next string) string {
	if next == "" || len(next) > maxNext || next[0] != '/' {
		return "/"
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/"
	}
	for i := 0; i < len(next); i++ {
		if b := next[i]; b < ' ' || b == 0x7f || b == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	return next
}
