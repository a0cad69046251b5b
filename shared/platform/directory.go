package platform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/auth"
)

// directory adapts the suite's accounts store to what a product's sign-in
// needs, translating the store's errors into the ones auth acts on.
type directory struct{ s *accounts.Store }

var _ auth.Directory = directory{}

func toAuthUser(u accounts.User) auth.User {
	return auth.User{ID: u.ID, Username: u.Username, Name: u.Name, Email: u.Email, Role: string(u.Role), Locked: u.Locked}
}

func toAuthKey(k accounts.APIKey) auth.APIKey {
	return auth.APIKey{ID: k.ID, Name: k.Name, Product: k.Product, Prefix: k.Prefix,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt}
}

// mapErr turns store errors into auth's: not-found into unknown, bad input
// into a message for the person, anything else into an outage.
func mapErr(err error, notFound error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, accounts.ErrNotFound):
		return fmt.Errorf("%w: %w", notFound, err)
	case errors.Is(err, accounts.ErrExists), errors.Is(err, accounts.ErrInvalid):
		return &auth.InputError{Msg: err.Error()}
	}
	return err
}

func (d directory) User(ctx context.Context, id string) (auth.User, error) {
	u, err := d.s.User(ctx, id)
	return toAuthUser(u), mapErr(err, auth.ErrUnknownUser)
}

func (d directory) UpsertExternal(ctx context.Context, issuer, subject, username, name, email string, role *string) (auth.User, error) {
	var r *accounts.Role
	if role != nil {
		rr := accounts.Role(*role)
		r = &rr
	}
	u, err := d.s.UpsertExternal(ctx, issuer, subject, username, name, email, r)
	return toAuthUser(u), mapErr(err, auth.ErrUnknownUser)
}

func (d directory) AuthenticateKey(ctx context.Context, key, product string) (auth.User, error) {
	u, _, err := d.s.AuthenticateKey(ctx, key, product)
	if errors.Is(err, accounts.ErrBadCredentials) || errors.Is(err, accounts.ErrExpired) ||
		errors.Is(err, accounts.ErrLocked) || errors.Is(err, accounts.ErrNotFound) {
		return auth.User{}, fmt.Errorf("%w: %w", auth.ErrInvalidKey, err)
	}
	return toAuthUser(u), err
}

func (d directory) SignInActive(ctx context.Context, sid string) (bool, error) {
	return d.s.SignInActive(ctx, sid)
}

func (d directory) ListUsers(ctx context.Context) ([]auth.User, error) {
	us, err := d.s.ListUsers(ctx)
	out := make([]auth.User, 0, len(us))
	for _, u := range us {
		out = append(out, toAuthUser(u))
	}
	return out, err
}

func (d directory) AddUser(ctx context.Context, username, name, email, password, role string) (auth.User, error) {
	u, err := d.s.AddUser(ctx, accounts.NewUser{Username: username, Name: name, Email: email, Password: password, Role: accounts.Role(role)})
	return toAuthUser(u), mapErr(err, auth.ErrUnknownUser)
}

func (d directory) SetRole(ctx context.Context, username, role string) error {
	return mapErr(d.s.SetRole(ctx, username, accounts.Role(role)), auth.ErrUnknownUser)
}

func (d directory) SetLocked(ctx context.Context, username string, locked bool) error {
	return mapErr(d.s.SetLocked(ctx, username, locked), auth.ErrUnknownUser)
}

func (d directory) CreateAPIKey(ctx context.Context, userID, name, product string, expiresAt *time.Time) (string, auth.APIKey, error) {
	key, k, err := d.s.CreateAPIKey(ctx, userID, name, product, expiresAt)
	return key, toAuthKey(k), mapErr(err, auth.ErrUnknownUser)
}

func (d directory) ListAPIKeys(ctx context.Context, userID string) ([]auth.APIKey, error) {
	ks, err := d.s.ListAPIKeys(ctx, userID)
	out := make([]auth.APIKey, 0, len(ks))
	for _, k := range ks {
		out = append(out, toAuthKey(k))
	}
	return out, err
}

func (d directory) RevokeAPIKey(ctx context.Context, userID, keyID string) error {
	return mapErr(d.s.RevokeAPIKey(ctx, userID, keyID), auth.ErrUnknownKey)
}
