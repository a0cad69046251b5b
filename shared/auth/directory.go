package auth

import (
	"context"
	"errors"
	"time"
)

// Roles, least to most privileged. They match config.RoleViewer and friends.
const (
	RoleViewer    = "viewer"
	RolePublisher = "publisher"
	RoleAdmin     = "admin"
)

// roleRank orders the roles; 0 means "not a role".
func roleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RolePublisher:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// User is a person as the products see them.
type User struct {
	ID       string
	Username string
	Name     string
	Email    string
	Role     string // RoleViewer, RolePublisher or RoleAdmin
	Locked   bool
}

// APIKey describes a key without its secret, which exists only when it is
// created.
type APIKey struct {
	ID         string
	Name       string
	Product    string
	Prefix     string // the first characters of the key, so a person can tell keys apart
	CreatedAt  time.Time
	ExpiresAt  *time.Time // nil: never expires
	LastUsedAt *time.Time // nil: never used
}

var (
	// ErrUnknownUser means the user (or, from UpsertExternal, the identity)
	// does not exist, or no longer does.
	ErrUnknownUser = errors.New("unknown user")
	// ErrInvalidKey means an API key is unknown, revoked, expired, scoped to
	// another product, or belongs to a locked user. The caller gets a 401;
	// any other error from AuthenticateKey is treated as an outage (500),
	// so that a database failure never looks like a wrong key.
	ErrInvalidKey = errors.New("invalid API key")
	// ErrUnknownKey means RevokeAPIKey found no such key of that user.
	ErrUnknownKey = errors.New("unknown API key")
)

// InputError is a Directory error the person can correct (a taken
// username, a password that is too short). Its message is shown to them as
// is, so it must not contain anything private.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// Directory is the suite's user directory as a product's sign-in needs it.
// shared/accounts implements it; the products never see its tables.
//
// Every method must be safe for concurrent use. Errors other than the ones
// documented here are treated as outages: logged and shown as a 500.
type Directory interface {
	// User returns the user with the given ID, or ErrUnknownUser.
	User(ctx context.Context, id string) (User, error)
	// UpsertExternal records a sign-in through an external provider: it
	// finds the user linked to (issuer, subject) or creates one, and
	// updates username, name and email. role nil keeps the stored role (a
	// new user gets the directory's default, viewer); otherwise the role
	// is set.
	UpsertExternal(ctx context.Context, issuer, subject, username, name, email string, role *string) (User, error)
	// AuthenticateKey returns the owner of an API key valid for product,
	// and records its use. Unknown, revoked, expired or other-product
	// keys and locked owners are errors wrapping ErrInvalidKey.
	AuthenticateKey(ctx context.Context, key, product string) (User, error)
	// SignInActive reports whether the embedded provider's sign-in session
	// sid is still alive; false once the person signed out at the provider
	// (from any product) or the sign-in expired.
	SignInActive(ctx context.Context, sid string) (bool, error)

	// ListUsers returns every user, ordered as they should be shown.
	ListUsers(ctx context.Context) ([]User, error)
	// AddUser creates a user who signs in with a password at the embedded
	// provider. Bad input is an *InputError.
	AddUser(ctx context.Context, username, name, email, password, role string) (User, error)
	// SetRole and SetLocked change a user; ErrUnknownUser when there is no
	// user with that username.
	SetRole(ctx context.Context, username, role string) error
	SetLocked(ctx context.Context, username string, locked bool) error

	// CreateAPIKey makes a key for userID scoped to product and returns its
	// secret, which is never available again. Bad input is an *InputError.
	CreateAPIKey(ctx context.Context, userID, name, product string, expiresAt *time.Time) (key string, k APIKey, err error)
	// ListAPIKeys returns the user's keys for every product.
	ListAPIKeys(ctx context.Context, userID string) ([]APIKey, error)
	// RevokeAPIKey deletes one of the user's keys; ErrUnknownKey when the
	// user has no key with that ID.
	RevokeAPIKey(ctx context.Context, userID, keyID string) error
}
