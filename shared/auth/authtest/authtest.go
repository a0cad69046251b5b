// Package authtest is an OpenID provider for tests of code that signs people
// in through shared/auth.
//
// It is small but follows the protocol where a relying party can tell:
// discovery, a JWKS with an RSA key, an authorization endpoint, a token
// endpoint that authenticates the client (client_secret_basic or
// client_secret_post) and checks the PKCE S256 verifier, the redirect URI
// and that each code is used once, and an end_session endpoint. There is no
// login form: the authorization endpoint signs in the configured user at
// once. Hooks make it misbehave the ways a relying party must notice:
// claims changed (issuer, audience, expiry, nonce), a signature by the
// wrong key, a refusal (?error=access_denied), or being down.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keys are generated once per test binary: RSA generation is slow, and
// tests gain nothing from a fresh key each.
var keys = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var k [2]*rsa.PrivateKey
	for i := range k {
		var err error
		if k[i], err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	}
	return k
})

const keyID = "authtest-1"

// User is who the authorization endpoint signs in.
type User struct {
	Subject  string
	Username string // preferred_username; omitted when empty
	Name     string
	Email    string
	Groups   []string // the groups claim; omitted when nil
	SID      string   // the sid claim; omitted when empty
}

// Options configure a Provider.
type Options struct {
	// Now is the provider's clock for iat, exp and code expiry; nil is
	// time.Now.
	Now func() time.Time
	// GroupsClaim names the claim carrying User.Groups; empty is "groups".
	GroupsClaim string
	// NoEndSession leaves end_session_endpoint out of discovery.
	NoEndSession bool
	// OnEndSession is called with the query of each end_session request
	// (id_token_hint, client_id, post_logout_redirect_uri).
	OnEndSession func(q url.Values)
}

type client struct {
	secret       string
	redirectURIs []string
}

type grant struct {
	clientID, redirectURI, challenge, nonce string
	user                                    User
	expires                                 time.Time
}

// Provider is a running test provider, stopped when the test ends.
type Provider struct {
	srv  *httptest.Server
	opts Options

	mu          sync.Mutex
	clients     map[string]client
	user        User
	codes       map[string]grant
	deny        [2]string // error code and description for the next authorization
	modify      func(claims map[string]any)
	wrongKey    bool
	down        bool
	endSessions []url.Values
	tokenCalls  int
}

// New starts a provider. Its issuer is the server's URL.
func New(t testing.TB, opts Options) *Provider {
	t.Helper()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.GroupsClaim == "" {
		opts.GroupsClaim = "groups"
	}
	p := &Provider{opts: opts, clients: map[string]client{}, codes: map[string]grant{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /keys", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("GET /end_session", p.endSession)
	p.srv = httptest.NewServer(p.unlessDown(mux))
	t.Cleanup(p.srv.Close)
	return p
}

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.srv.URL }

// AddClient registers a client. An empty secret makes a public client.
func (p *Provider) AddClient(id, secret string, redirectURIs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[id] = client{secret: secret, redirectURIs: redirectURIs}
}

// SetUser sets who the next authorizations sign in.
func (p *Provider) SetUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user = u
}

// DenyNext makes the next authorization redirect back with ?error=code.
func (p *Provider) DenyNext(code, description string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deny = [2]string{code, description}
}

// ModifyClaims changes the claims of every ID token issued from now on,
// just before signing; nil stops changing them.
func (p *Provider) ModifyClaims(fn func(claims map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.modify = fn
}

// SignWithWrongKey signs ID tokens with a key that is not in the JWKS but
// has the same key id, so only the signature check can catch it.
func (p *Provider) SignWithWrongKey(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wrongKey = on
}

// SetDown makes every endpoint answer 503, as a provider still starting.
func (p *Provider) SetDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// EndSessions returns the queries of the end_session requests so far.
func (p *Provider) EndSessions() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.endSessions)
}

// TokenCalls counts the requests to the token endpoint.
func (p *Provider) TokenCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokenCalls
}

func (p *Provider) unlessDown(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	iss := p.Issuer()
	doc := map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/authorize",
		"token_endpoint":                        iss + "/token",
		"jwks_uri":                              iss + "/keys",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"grant_types_supported":                 []string{"authorization_code"},
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
	}
	if !p.opts.NoEndSession {
		doc["end_session_endpoint"] = iss + "/end_session"
	}
	writeJSON(w, http.StatusOK, doc)
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: keys()[0].Public(), KeyID: keyID, Algorithm: string(jose.RS256), Use: "sig",
	}}})
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[q.Get("client_id")]
	redirect := q.Get("redirect_uri")
	// Never redirect to an address not registered for the client: errors
	// before that check are shown here (RFC 6749 4.1.2.1).
	if !ok || !slices.Contains(c.redirectURIs, redirect) {
		http.Error(w, "unknown client_id or unregistered redirect_uri", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		if s := q.Get("state"); s != "" {
			params.Set("state", s)
		}
		u, _ := url.Parse(redirect)
		u.RawQuery = params.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		back(url.Values{"error": {code}, "error_description": {desc}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only code is supported")
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "openid is required")
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		fail("invalid_request", "PKCE with S256 is required")
		return
	case p.deny[0] != "":
		code, desc := p.deny[0], p.deny[1]
		p.deny = [2]string{}
		fail(code, desc)
		return
	}
	code := rand.Text()
	p.codes[code] = grant{
		clientID: q.Get("client_id"), redirectURI: redirect, challenge: q.Get("code_challenge"),
		nonce: q.Get("nonce"), user: p.user, expires: p.opts.Now().Add(time.Minute),
	}
	back(url.Values{"code": {code}})
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// clientAuth returns the client id the request authenticated as.
func (p *Provider) clientAuth(r *http.Request) (string, bool) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 2.3.1: both are form-encoded before Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", false
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, ok := p.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return "", false
	}
	return id, true
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenCalls++
	clientID, ok := p.clientAuth(r)
	if !ok {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code")
		return
	}
	code := r.PostForm.Get("code")
	g, ok := p.codes[code]
	delete(p.codes, code) // single use, even when the rest fails
	verifier := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case !ok || p.opts.Now().After(g.expires):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown, used or expired code")
		return
	case g.clientID != clientID || g.redirectURI != r.PostForm.Get("redirect_uri"):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code was issued to another client or redirect_uri")
		return
	case base64.RawURLEncoding.EncodeToString(verifier[:]) != g.challenge:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "PKCE verifier does not match")
		return
	}
	access := rand.Text()
	ath := sha256.Sum256([]byte(access))
	now := p.opts.Now()
	claims := map[string]any{
		"iss": p.Issuer(), "sub": g.user.Subject, "aud": clientID,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "auth_time": now.Unix(),
		"at_hash": base64.RawURLEncoding.EncodeToString(ath[:len(ath)/2]),
	}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	for k, v := range map[string]string{"sid": g.user.SID, "preferred_username": g.user.Username, "name": g.user.Name, "email": g.user.Email} {
		if v != "" {
			claims[k] = v
		}
	}
	if g.user.Groups != nil {
		claims[p.opts.GroupsClaim] = g.user.Groups
	}
	if p.modify != nil {
		p.modify(claims)
	}
	idToken, err := p.sign(claims)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": idToken,
	})
}

func (p *Provider) sign(claims map[string]any) (string, error) {
	key := keys()[0]
	if p.wrongKey {
		key = keys()[1]
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: keyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.endSessions = append(p.endSessions, q)
	c, known := p.clients[q.Get("client_id")]
	p.mu.Unlock()
	if p.opts.OnEndSession != nil {
		p.opts.OnEndSession(q)
	}
	// Only return to the client's own origin, as a real provider checks
	// post_logout_redirect_uri against the registration.
	back := q.Get("post_logout_redirect_uri")
	if bu, err := url.Parse(back); err == nil && known && back != "" {
		for _, ru := range c.redirectURIs {
			if u, err := url.Parse(ru); err == nil && u.Scheme == bu.Scheme && u.Host == bu.Host {
				http.Redirect(w, r, back, http.StatusFound)
				return
			}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("signed out\n"))
}
