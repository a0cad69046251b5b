package auth_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/atrium-suite/atrium/shared/auth"
)

// fakeDirectory implements auth.Directory in memory with the semantics the
// interface documents.
type fakeDirectory struct {
	now func() time.Time

	mu        sync.Mutex
	nextID    int
	users     map[string]*auth.User // by ID
	passwords map[string]string     // by ID
	external  map[[2]string]string  // (issuer, subject) → ID
	upserts   []upsert
	signIns   map[string]bool     // sid → active
	keys      map[string]*fakeKey // by secret
}

type upsert struct {
	issuer, subject, username string
	role                      *string
}

type fakeKey struct {
	auth.APIKey
	userID string
}

func newFakeDirectory(now func() time.Time) *fakeDirectory {
	return &fakeDirectory{
		now: now, users: map[string]*auth.User{}, passwords: map[string]string{},
		external: map[[2]string]string{}, signIns: map[string]bool{}, keys: map[string]*fakeKey{},
	}
}

func (d *fakeDirectory) add(username, role string) auth.User {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addLocked(username, username+" Example", username+"@example.com", role)
}

func (d *fakeDirectory) addLocked(username, name, email, role string) auth.User {
	d.nextID++
	u := &auth.User{ID: "u" + strconv.Itoa(d.nextID), Username: username, Name: name, Email: email, Role: role}
	d.users[u.ID] = u
	return *u
}

func (d *fakeDirectory) byUsername(username string) *auth.User {
	for _, u := range d.users {
		if u.Username == username {
			return u
		}
	}
	return nil
}

func (d *fakeDirectory) get(username string) (auth.User, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u := d.byUsername(username); u != nil {
		return *u, true
	}
	return auth.User{}, false
}

func (d *fakeDirectory) remove(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.users, id)
}

func (d *fakeDirectory) setSignIn(sid string, active bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.signIns[sid] = active
}

func (d *fakeDirectory) lastUpsert() (upsert, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.upserts) == 0 {
		return upsert{}, false
	}
	return d.upserts[len(d.upserts)-1], true
}

func (d *fakeDirectory) keyCount(userID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, k := range d.keys {
		if k.userID == userID {
			n++
		}
	}
	return n
}

func (d *fakeDirectory) User(_ context.Context, id string) (auth.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return auth.User{}, fmt.Errorf("user %s: %w", id, auth.ErrUnknownUser)
	}
	return *u, nil
}

func (d *fakeDirectory) UpsertExternal(_ context.Context, issuer, subject, username, name, email string, role *string) (auth.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.upserts = append(d.upserts, upsert{issuer, subject, username, role})
	id, ok := d.external[[2]string{issuer, subject}]
	if !ok {
		u := d.addLocked(username, name, email, cmp.Or(deref(role), auth.RoleViewer))
		d.external[[2]string{issuer, subject}] = u.ID
		return u, nil
	}
	u := d.users[id]
	u.Username, u.Name, u.Email = username, name, email
	if role != nil {
		u.Role = *role
	}
	return *u, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (d *fakeDirectory) AuthenticateKey(_ context.Context, key, product string) (auth.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.keys[key]
	if !ok || (k.Product != product && k.Product != "") || (k.ExpiresAt != nil && !d.now().Before(*k.ExpiresAt)) {
		return auth.User{}, auth.ErrInvalidKey
	}
	u, ok := d.users[k.userID]
	if !ok || u.Locked {
		return auth.User{}, auth.ErrInvalidKey
	}
	t := d.now()
	k.LastUsedAt = &t
	return *u, nil
}

func (d *fakeDirectory) SignInActive(_ context.Context, sid string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	active, ok := d.signIns[sid]
	return !ok || active, nil // sign-ins the test never mentioned are alive
}

func (d *fakeDirectory) ListUsers(context.Context) ([]auth.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var us []auth.User
	for _, u := range d.users {
		us = append(us, *u)
	}
	slices.SortFunc(us, func(a, b auth.User) int { return cmp.Compare(a.Username, b.Username) })
	return us, nil
}

func (d *fakeDirectory) AddUser(_ context.Context, username, name, email, password, role string) (auth.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byUsername(username) != nil {
		return auth.User{}, &auth.InputError{Msg: "username " + username + " is taken"}
	}
	if len(password) < 8 {
		return auth.User{}, &auth.InputError{Msg: "the password must have at least 8 characters"}
	}
	u := d.addLocked(username, name, email, role)
	d.passwords[u.ID] = password
	return u, nil
}

func (d *fakeDirectory) SetRole(_ context.Context, username, role string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.byUsername(username)
	if u == nil {
		return auth.ErrUnknownUser
	}
	u.Role = role
	return nil
}

func (d *fakeDirectory) SetLocked(_ context.Context, username string, locked bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.byUsername(username)
	if u == nil {
		return auth.ErrUnknownUser
	}
	u.Locked = locked
	return nil
}

func (d *fakeDirectory) CreateAPIKey(_ context.Context, userID, name, product string, expiresAt *time.Time) (string, auth.APIKey, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.users[userID]; !ok {
		return "", auth.APIKey{}, auth.ErrUnknownUser
	}
	secret := "atr_" + rand.Text()
	d.nextID++
	k := &fakeKey{userID: userID, APIKey: auth.APIKey{
		ID: "k" + strconv.Itoa(d.nextID), Name: name, Product: product, Prefix: secret[:8],
		CreatedAt: d.now(), ExpiresAt: expiresAt,
	}}
	d.keys[secret] = k
	return secret, k.APIKey, nil
}

func (d *fakeDirectory) ListAPIKeys(_ context.Context, userID string) ([]auth.APIKey, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ks []auth.APIKey
	for _, k := range d.keys {
		if k.userID == userID {
			ks = append(ks, k.APIKey)
		}
	}
	slices.SortFunc(ks, func(a, b auth.APIKey) int { return cmp.Compare(a.ID, b.ID) })
	return ks, nil
}

func (d *fakeDirectory) RevokeAPIKey(_ context.Context, userID, keyID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for secret, k := range d.keys {
		if k.userID == userID && k.ID == keyID {
			delete(d.keys, secret)
			return nil
		}
	}
	return auth.ErrUnknownKey
}
