package keycloaktest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Realm is what Start imports into Keycloak.
type Realm struct {
	Name    string // e.g. "atrium"; the issuer's last path segment
	Clients []Client
	Users   []User
	// Groups are created in the realm. Groups that users are in are created
	// too, so list here only the groups nobody is in.
	Groups []string
}

// Client is a confidential OpenID Connect client (relying party).
type Client struct {
	ID     string // client_id
	Secret string // client_secret, for client_secret_basic and client_secret_post
	// RedirectURIs are the allowed redirect_uri values; Keycloak allows a
	// trailing * wildcard.
	RedirectURIs []string
	// PostLogoutRedirectURIs are the allowed post_logout_redirect_uri
	// values; empty allows the RedirectURIs.
	PostLogoutRedirectURIs []string
	// RequirePKCE makes Keycloak refuse authorization requests without an
	// S256 code_challenge. Without it PKCE is optional: used when sent.
	RequirePKCE bool
}

// User is a user who signs in with a password. Keycloak's user profile
// requires an email and a first and last name: empty ones default to
// USERNAME@example.test, USERNAME and "Test".
type User struct {
	Username, Password, Email, FirstName, LastName string
	Groups                                         []string // group names, e.g. "atrium-admins"
}

// JSON is the realm as a Keycloak realm representation, as --import-realm
// reads it.
func (r Realm) JSON() ([]byte, error) {
	if r.Name == "" || strings.ContainsAny(r.Name, "/?#") {
		return nil, fmt.Errorf("realm name %q: want a plain name such as \"atrium\"", r.Name)
	}
	if r.Name == "master" {
		return nil, errors.New(`realm name "master" is Keycloak's own admin realm`)
	}
	groups := slices.Clone(r.Groups)
	for _, u := range r.Users {
		groups = append(groups, u.Groups...)
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)

	rep := realmRep{
		Realm:                 r.Name,
		Enabled:               true,
		SSLRequired:           "none",
		RegistrationAllowed:   false,
		LoginWithEmailAllowed: true,
		ResetPasswordAllowed:  false,
		VerifyEmail:           false,
		Groups:                []groupRep{},
		Clients:               []clientRep{},
		Users:                 []userRep{},
	}
	for _, g := range groups {
		if g == "" || strings.Contains(g, "/") {
			return nil, fmt.Errorf("group %q: want a plain name", g)
		}
		rep.Groups = append(rep.Groups, groupRep{Name: g, Path: "/" + g})
	}
	for _, c := range r.Clients {
		if c.ID == "" || c.Secret == "" {
			return nil, fmt.Errorf("client %q: ID and Secret are required", c.ID)
		}
		if len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("client %q: no RedirectURIs", c.ID)
		}
		attrs := map[string]string{
			// "+": whatever the redirect URIs allow.
			"post.logout.redirect.uris": "+",
		}
		if len(c.PostLogoutRedirectURIs) > 0 {
			attrs["post.logout.redirect.uris"] = strings.Join(c.PostLogoutRedirectURIs, "##")
		}
		if c.RequirePKCE {
			attrs["pkce.code.challenge.method"] = "S256"
		}
		rep.Clients = append(rep.Clients, clientRep{
			ClientID:                  c.ID,
			Name:                      c.ID,
			Enabled:                   true,
			Protocol:                  "openid-connect",
			PublicClient:              false,
			ClientAuthenticatorType:   "client-secret",
			Secret:                    c.Secret,
			StandardFlowEnabled:       true,
			ImplicitFlowEnabled:       false,
			DirectAccessGrantsEnabled: false,
			ServiceAccountsEnabled:    false,
			ConsentRequired:           false,
			FrontchannelLogout:        true,
			RedirectURIs:              c.RedirectURIs,
			WebOrigins:                []string{"+"},
			Attributes:                attrs,
			// On the client rather than in a client scope of our own: a
			// realm that lists clientScopes loses Keycloak's built-in ones
			// (profile, email, …) and with them preferred_username.
			ProtocolMappers: []mapperRep{{
				Name:           "groups",
				Protocol:       "openid-connect",
				ProtocolMapper: "oidc-group-membership-mapper",
				Config: map[string]string{
					"full.path":                 "false",
					"claim.name":                "groups",
					"id.token.claim":            "true",
					"access.token.claim":        "true",
					"userinfo.token.claim":      "true",
					"introspection.token.claim": "true",
				},
			}},
		})
	}
	for _, u := range r.Users {
		if u.Username == "" || u.Password == "" {
			return nil, fmt.Errorf("user %q: Username and Password are required", u.Username)
		}
		ur := userRep{
			Username:        u.Username,
			Enabled:         true,
			Email:           u.Email,
			EmailVerified:   true,
			FirstName:       u.FirstName,
			LastName:        u.LastName,
			Credentials:     []credentialRep{{Type: "password", Value: u.Password, Temporary: false}},
			RequiredActions: []string{},
			Groups:          []string{},
		}
		if ur.Email == "" {
			ur.Email = u.Username + "@example.test"
		}
		if ur.FirstName == "" {
			ur.FirstName = u.Username
		}
		if ur.LastName == "" {
			ur.LastName = "Test"
		}
		for _, g := range u.Groups {
			ur.Groups = append(ur.Groups, "/"+g)
		}
		rep.Users = append(rep.Users, ur)
	}
	return json.MarshalIndent(rep, "", "  ")
}

// The parts of Keycloak's representations (org.keycloak.representations.idm)
// that Realm sets.

type realmRep struct {
	Realm                 string      `json:"realm"`
	Enabled               bool        `json:"enabled"`
	SSLRequired           string      `json:"sslRequired"`
	RegistrationAllowed   bool        `json:"registrationAllowed"`
	LoginWithEmailAllowed bool        `json:"loginWithEmailAllowed"`
	ResetPasswordAllowed  bool        `json:"resetPasswordAllowed"`
	VerifyEmail           bool        `json:"verifyEmail"`
	Groups                []groupRep  `json:"groups"`
	Clients               []clientRep `json:"clients"`
	Users                 []userRep   `json:"users"`
}

type groupRep struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

type clientRep struct {
	ClientID                  string            `json:"clientId"`
	Name                      string            `json:"name"`
	Enabled                   bool              `json:"enabled"`
	Protocol                  string            `json:"protocol"`
	PublicClient              bool              `json:"publicClient"`
	ClientAuthenticatorType   string            `json:"clientAuthenticatorType"`
	Secret                    string            `json:"secret"`
	StandardFlowEnabled       bool              `json:"standardFlowEnabled"`
	ImplicitFlowEnabled       bool              `json:"implicitFlowEnabled"`
	DirectAccessGrantsEnabled bool              `json:"directAccessGrantsEnabled"`
	ServiceAccountsEnabled    bool              `json:"serviceAccountsEnabled"`
	ConsentRequired           bool              `json:"consentRequired"`
	FrontchannelLogout        bool              `json:"frontchannelLogout"`
	RedirectURIs              []string          `json:"redirectUris"`
	WebOrigins                []string          `json:"webOrigins"`
	Attributes                map[string]string `json:"attributes"`
	ProtocolMappers           []mapperRep       `json:"protocolMappers"`
}

type mapperRep struct {
	Name           string            `json:"name"`
	Protocol       string            `json:"protocol"`
	ProtocolMapper string            `json:"protocolMapper"`
	Config         map[string]string `json:"config"`
}

type userRep struct {
	Username        string          `json:"username"`
	Enabled         bool            `json:"enabled"`
	Email           string          `json:"email"`
	EmailVerified   bool            `json:"emailVerified"`
	FirstName       string          `json:"firstName"`
	LastName        string          `json:"lastName"`
	Credentials     []credentialRep `json:"credentials"`
	RequiredActions []string        `json:"requiredActions"`
	Groups          []string        `json:"groups"`
}

type credentialRep struct {
	Type      string `json:"type"`
	Value     string `json:"value"`
	Temporary bool   `json:"temporary"`
}
