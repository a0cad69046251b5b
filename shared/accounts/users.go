package accounts

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/atrium-suite/atrium/shared/db"
)

// usernamePattern keeps usernames safe to use as they are in URLs, file
// names (Workbench home directories) and Unix account names.
var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Password limits. bcrypt ignores everything after 72 bytes, so a longer
// password would only look stronger than it is; refuse it instead.
const (
	MinPasswordLength = 8
	MaxPasswordBytes  = 72
	maxNameLength     = 200
	maxEmailLength    = 320
)

// ValidUsername returns an error wrapping ErrInvalid unless username is
// 1-64 characters of a-z, 0-9, '.', '_' and '-' starting with a letter or
// digit.
func ValidUsername(username string) error {
	if !usernamePattern.MatchString(username) {
		return fmt.Errorf("%w: username %q must be 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", ErrInvalid, username)
	}
	return nil
}

// normUsername is applied to usernames people type when signing in or
// naming a user in the CLI; stored usernames are already in this form.
func normUsername(username string) string {
	return strings.ToLower(strings.TrimSpace(username))
}

func checkPassword(password string) error {
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return fmt.Errorf("%w: password must have at least %d characters", ErrInvalid, MinPasswordLength)
	case len(password) > MaxPasswordBytes:
		return fmt.Errorf("%w: password must not be longer than %d bytes", ErrInvalid, MaxPasswordBytes)
	}
	return nil
}

func checkProfile(name, email string) error {
	switch {
	case utf8.RuneCountInString(name) > maxNameLength:
		return fmt.Errorf("%w: name must not be longer than %d characters", ErrInvalid, maxNameLength)
	case len(email) > maxEmailLength:
		return fmt.Errorf("%w: email must not be longer than %d bytes", ErrInvalid, maxEmailLength)
	case !utf8.ValidString(name) || !utf8.ValidString(email):
		return fmt.Errorf("%w: name and email must be UTF-8", ErrInvalid)
	}
	return nil
}

// hashPassword returns NULL for an empty password: no password stored.
func (s *Store) hashPassword(password string) (sql.NullString, error) {
	if password == "" {
		return sql.NullString{}, nil
	}
	if err := checkPassword(password); err != nil {
		return sql.NullString{}, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("hash password: %w", err)
	}
	return sql.NullString{String: string(h), Valid: true}, nil
}

// NewUser is what AddUser needs.
type NewUser struct {
	Username string
	Name     string
	Email    string
	// Password may be empty: the user then cannot sign in with the
	// embedded provider (only with API keys or an external provider).
	Password string
	// Role defaults to RoleViewer.
	Role Role
}

// AddUser creates a local user. A username already taken is ErrExists; a
// bad username, password, name or role is ErrInvalid.
func (s *Store) AddUser(ctx context.Context, nu NewUser) (User, error) {
	if err := ValidUsername(nu.Username); err != nil {
		return User{}, err
	}
	if nu.Role == "" {
		nu.Role = RoleViewer
	}
	if !nu.Role.Valid() {
		return User{}, fmt.Errorf("%w: role %q is not one of viewer, publisher, admin", ErrInvalid, nu.Role)
	}
	name, email := strings.TrimSpace(nu.Name), strings.TrimSpace(nu.Email)
	if err := checkProfile(name, email); err != nil {
		return User{}, err
	}
	hash, err := s.hashPassword(nu.Password)
	if err != nil {
		return User{}, err
	}
	now := s.nowMS()
	u := User{
		ID: newID(), Username: nu.Username, Name: name, Email: email, Role: nu.Role,
		HasPassword: hash.Valid, CreatedAt: fromMS(now), UpdatedAt: fromMS(now),
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO users (id, username, name, email, role, locked, password_hash, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.ID, u.Username, u.Name, u.Email, string(u.Role), false, hash, now, now)
	if isUniqueViolation(err) {
		return User{}, fmt.Errorf("user %q: %w", u.Username, ErrExists)
	}
	if err != nil {
		return User{}, fmt.Errorf("add user %q: %w", u.Username, err)
	}
	s.log.Info("user added", "user", u.Username, "role", string(u.Role))
	return u, nil
}

const userColumns = `id, username, name, email, role, locked, issuer, subject, password_hash, created_at, updated_at`

type rowScanner interface{ Scan(dest ...any) error }

// scanUser also returns the password hash ("" for none), which never
// leaves the package.
func scanUser(row rowScanner) (User, string, error) {
	var (
		u                     User
		role                  string
		issuer, subject, hash sql.NullString
		createdAt, updatedAt  int64
	)
	err := row.Scan(&u.ID, &u.Username, &u.Name, &u.Email, &role, &u.Locked, &issuer, &subject, &hash, &createdAt, &updatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, "", ErrNotFound
	}
	if err != nil {
		return User{}, "", err
	}
	u.Role = Role(role)
	u.Issuer, u.Subject = issuer.String, subject.String
	u.HasPassword = hash.String != ""
	u.CreatedAt, u.UpdatedAt = fromMS(createdAt), fromMS(updatedAt)
	return u, hash.String, nil
}

// User returns the user with the given ID.
func (s *Store) User(ctx context.Context, id string) (User, error) {
	u, err := s.users.Get(ctx, s.db, id, func() (User, error) {
		u, _, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
		return u, err
	})
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// UserByUsername returns the user with the given username (compared in
// lower case, ignoring surrounding space).
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	u, _, err := s.userByUsername(ctx, username)
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", username, err)
	}
	return u, nil
}

func (s *Store) userByUsername(ctx context.Context, username string) (User, string, error) {
	return scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username = ?`, normUsername(username)))
}

// ListUsers returns every user, ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, _, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// updateUser runs one UPDATE on the named user inside tx and reports
// ErrNotFound when no row matched.
func (s *Store) updateUser(ctx context.Context, tx *db.Tx, username, set string, args ...any) (string, error) {
	var id string
	args = append(args, s.nowMS(), normUsername(username))
	err := tx.QueryRowContext(ctx, `UPDATE users SET `+set+`, updated_at = ? WHERE username = ? RETURNING id`, args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("user %q: %w", username, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("update user %q: %w", username, err)
	}
	return id, nil
}

// SetRole changes a user's role; every product sees it on the next request.
func (s *Store) SetRole(ctx context.Context, username string, r Role) error {
	if !r.Valid() {
		return fmt.Errorf("%w: role %q is not one of viewer, publisher, admin", ErrInvalid, r)
	}
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		_, err := s.updateUser(ctx, tx, username, `role = ?`, string(r))
		return err
	})
	if err == nil {
		s.log.Info("user role changed", "user", normUsername(username), "role", string(r))
	}
	return err
}

// SetLocked locks or unlocks a user. Locking also ends the user's
// provider sign-ins in the same transaction, so their sessions stop at
// once in every product (products check SignInActive) instead of when the
// sessions expire; their API keys stop working too.
func (s *Store) SetLocked(ctx context.Context, username string, locked bool) error {
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		id, err := s.updateUser(ctx, tx, username, `locked = ?`, locked)
		if err != nil || !locked {
			return err
		}
		return s.endSignInsOfUser(ctx, tx, id)
	})
	if err == nil {
		s.log.Info("user lock changed", "user", normUsername(username), "locked", locked)
	}
	return err
}

// SetPassword replaces a user's password; an empty password removes it (the
// user can then no longer sign in with the embedded provider). The user's
// provider sign-ins end, because a password is reset mostly when it may
// have leaked, and the sessions opened with it should not outlive it.
func (s *Store) SetPassword(ctx context.Context, username, password string) error {
	hash, err := s.hashPassword(password)
	if err != nil {
		return err
	}
	err = s.db.InTx(ctx, func(tx *db.Tx) error {
		id, err := s.updateUser(ctx, tx, username, `password_hash = ?`, hash)
		if err != nil {
			return err
		}
		return s.endSignInsOfUser(ctx, tx, id)
	})
	if err == nil {
		s.log.Info("user password changed", "user", normUsername(username))
	}
	return err
}

// CheckPassword returns the user if the password is theirs. An unknown
// user, a user without a password and a wrong password are all
// ErrBadCredentials, and cost the same bcrypt work, so neither the answer
// nor its timing tells whether the username exists. ErrLocked comes only
// after a correct password, for the same reason.
func (s *Store) CheckPassword(ctx context.Context, username, password string) (User, error) {
	u, hash, err := s.userByUsername(ctx, username)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("check password: %w", err)
	}
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(s.dummy(), []byte(password))
		return User{}, ErrBadCredentials
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return User{}, ErrBadCredentials
	}
	if u.Locked {
		return User{}, ErrLocked
	}
	return u, nil
}

// dummy is a hash at the store's cost to compare against when there is no
// real one.
func (s *Store) dummy() []byte {
	s.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), s.cost)
		if err != nil {
			panic(fmt.Sprintf("accounts: dummy bcrypt hash: %v", err)) // only on an invalid cost, which WithBcryptCost prevents
		}
		s.dummyHash = h
	})
	return s.dummyHash
}

// UpsertExternal records a sign-in through an external OpenID provider.
// The first time (issuer, subject) is seen it creates a user: username
// comes from the provider's preferred username, made valid (see
// UsernameFrom), with -2, -3, … appended if it is taken; the role is *role,
// or RoleViewer when role is nil. Later sign-ins update name and email,
// and the role when role is not nil (providers that map groups to roles
// send one every time).
//
// A locked user is still updated and returned, together with ErrLocked, so
// that callers refuse the sign-in by default but can still log who it was.
func (s *Store) UpsertExternal(ctx context.Context, issuer, subject, username, name, email string, role *Role) (User, error) {
	if issuer == "" || subject == "" {
		return User{}, fmt.Errorf("%w: issuer and subject are required", ErrInvalid)
	}
	if role != nil && !role.Valid() {
		return User{}, fmt.Errorf("%w: role %q is not one of viewer, publisher, admin", ErrInvalid, *role)
	}
	name, email = strings.TrimSpace(name), strings.TrimSpace(email)
	if err := checkProfile(name, email); err != nil {
		return User{}, err
	}
	for range 3 { // a concurrent first sign-in of the same user can win the insert
		u, err := s.updateExternal(ctx, issuer, subject, name, email, role)
		if err == nil {
			if u.Locked {
				return u, ErrLocked
			}
			return u, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return User{}, err
		}
		u, err = s.insertExternal(ctx, issuer, subject, UsernameFrom(username), name, email, role)
		if errors.Is(err, ErrExists) {
			continue
		}
		return u, err
	}
	return User{}, fmt.Errorf("external user %s %s: concurrent updates, try again", issuer, subject)
}

func (s *Store) updateExternal(ctx context.Context, issuer, subject, name, email string, role *Role) (User, error) {
	set, args := `name = ?, email = ?`, []any{name, email}
	if role != nil {
		set += `, role = ?`
		args = append(args, string(*role))
	}
	args = append(args, s.nowMS(), issuer, subject)
	u, _, err := scanUser(s.db.QueryRowContext(ctx, `UPDATE users SET `+set+`, updated_at = ? WHERE issuer = ? AND subject = ? RETURNING `+userColumns, args...))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("update external user: %w", err)
	}
	return u, err
}

// insertExternal tries base, base-2, base-3, … until an insert succeeds.
// It returns ErrExists when the (issuer, subject) row appeared meanwhile.
func (s *Store) insertExternal(ctx context.Context, issuer, subject, base, name, email string, role *Role) (User, error) {
	r := RoleViewer
	if role != nil {
		r = *role
	}
	now := s.nowMS()
	u := User{ID: newID(), Name: name, Email: email, Role: r, Issuer: issuer, Subject: subject,
		CreatedAt: fromMS(now), UpdatedAt: fromMS(now)}
	for n := 1; n <= 1000; n++ {
		u.Username = withSuffix(base, n)
		_, err := s.db.ExecContext(ctx, `INSERT INTO users (id, username, name, email, role, locked, issuer, subject, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.ID, u.Username, u.Name, u.Email, string(u.Role), false, issuer, subject, now, now)
		if err == nil {
			s.log.Info("external user added", "user", u.Username, "issuer", issuer, "role", string(u.Role))
			return u, nil
		}
		if !isUniqueViolation(err) {
			return User{}, fmt.Errorf("add external user: %w", err)
		}
		var exists bool
		if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE issuer = ? AND subject = ?)`, issuer, subject).Scan(&exists); err != nil {
			return User{}, fmt.Errorf("add external user: %w", err)
		}
		if exists {
			return User{}, ErrExists
		}
	}
	return User{}, fmt.Errorf("%w: no free username like %q", ErrExists, base)
}

// withSuffix appends -n (n > 1), shortening base so the result stays a
// valid username.
func withSuffix(base string, n int) string {
	if n == 1 {
		return base
	}
	suffix := "-" + strconv.Itoa(n)
	if len(base)+len(suffix) > 64 {
		base = strings.TrimRight(base[:64-len(suffix)], "._-")
		if base == "" {
			base = "user"
		}
	}
	return base + suffix
}

// UsernameFrom turns an external provider's preferred username (often an
// email address or a display name) into a valid username: lower case, the
// part before an '@', other characters replaced by '-', at most 64
// characters, "user" if nothing is left.
func UsernameFrom(preferred string) string {
	preferred = strings.ToLower(strings.TrimSpace(preferred))
	if at := strings.IndexByte(preferred, '@'); at > 0 {
		preferred = preferred[:at]
	}
	var b strings.Builder
	for _, r := range preferred {
		if b.Len() >= 64 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.TrimLeft(b.String(), "._-")
	if name == "" {
		return "user"
	}
	return name
}
