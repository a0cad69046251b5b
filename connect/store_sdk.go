package connect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/db"
)

// The store's part for posit-sdk's surface (migrations/0002_sdk.sql):
// environment variables, groups, permissions, tags and vanity URLs.

// errConflict is returned when a row with the same key exists.
var errConflict = errors.New("conflict")

// nextID allocates the next number of an id_counters row inside tx.
func nextID(ctx context.Context, tx *db.Tx, counter string) (int64, error) {
	// The UPDATE takes the row's lock on PostgreSQL, so concurrent
	// allocations get distinct ids on both dialects.
	if _, err := tx.ExecContext(ctx, `UPDATE id_counters SET value = value + 1 WHERE name = ?`, counter); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT value FROM id_counters WHERE name = ?`, counter).Scan(&id)
	return id, err
}

// ---- Environment variables ----

// EnvVars returns the content's environment variables (name → value) for
// starting its processes. Unknown content has none.
func (s *store) EnvVars(ctx context.Context, guid string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, value FROM content_env WHERE content_guid = ?`, guid)
	if err != nil {
		return nil, fmt.Errorf("env vars: %w", err)
	}
	defer rows.Close()
	env := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		env[k] = v
	}
	return env, rows.Err()
}

// envVarNames lists the content's variable names, sorted.
func (s *store) envVarNames(ctx context.Context, guid string) ([]string, error) {
	env, err := s.EnvVars(ctx, guid)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, nil
}

// setEnvVars sets (non-nil value) and deletes (nil) variables; with
// replace, every variable not in updates is deleted first.
func (s *store) setEnvVars(ctx context.Context, guid string, updates map[string]*string, replace bool) error {
	now := s.nowMS()
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		if replace {
			if _, err := tx.ExecContext(ctx, `DELETE FROM content_env WHERE content_guid = ?`, guid); err != nil {
				return err
			}
		}
		for name, v := range updates {
			if _, err := tx.ExecContext(ctx, `DELETE FROM content_env WHERE content_guid = ? AND name = ?`, guid, name); err != nil {
				return err
			}
			if v == nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO content_env (content_guid, name, value, updated_at) VALUES (?, ?, ?, ?)`,
				guid, name, *v, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// ---- Groups ----

// Group is one of Connect's groups of directory users.
type Group struct {
	GUID      string
	Name      string
	OwnerID   string
	CreatedAt time.Time
}

func scanGroup(r scanner) (Group, error) {
	var g Group
	var created int64
	err := r.Scan(&g.GUID, &g.Name, &g.OwnerID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return g, errNotFound
	}
	g.CreatedAt = fromMS(created)
	return g, err
}

func (s *store) createGroup(ctx context.Context, g Group) (Group, error) {
	g.CreatedAt = s.now()
	res, err := s.db.ExecContext(ctx, `INSERT INTO connect_groups (guid, name, owner_id, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, g.GUID, g.Name, g.OwnerID, ms(g.CreatedAt))
	if err != nil {
		return g, fmt.Errorf("create group: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return g, errConflict
	}
	return g, nil
}

func (s *store) group(ctx context.Context, guid string) (Group, error) {
	return scanGroup(s.db.QueryRowContext(ctx, `SELECT guid, name, owner_id, created_at FROM connect_groups WHERE guid = ?`, guid))
}

// listGroups returns the groups, by name.
func (s *store) listGroups(ctx context.Context) ([]Group, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT guid, name, owner_id, created_at FROM connect_groups ORDER BY name, guid`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return collect(rows, scanGroup)
}

// deleteGroup removes the group, its memberships and the permissions given
// to it.
func (s *store) deleteGroup(ctx context.Context, guid string) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM content_permissions WHERE principal_type = 'group' AND principal_guid = ?`, guid); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM connect_groups WHERE guid = ?`, guid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound
		}
		return nil
	})
}

// groupMembers lists the user ids in the group, in the order they joined.
func (s *store) groupMembers(ctx context.Context, guid string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT user_id FROM group_members WHERE group_guid = ? ORDER BY created_at, user_id`, guid)
	if err != nil {
		return nil, fmt.Errorf("group members: %w", err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// addGroupMember adds the user; adding a member again changes nothing.
func (s *store) addGroupMember(ctx context.Context, guid, userID string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO group_members (group_guid, user_id, created_at) VALUES (?, ?, ?)
		ON CONFLICT (group_guid, user_id) DO NOTHING`, guid, userID, s.nowMS())
	return err
}

func (s *store) removeGroupMember(ctx context.Context, guid, userID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM group_members WHERE group_guid = ? AND user_id = ?`, guid, userID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

// ---- Permissions and access ----

// Permission gives a user or group a role on a content item.
type Permission struct {
	ID            int64
	ContentGUID   string
	PrincipalType string // user | group
	PrincipalGUID string
	Role          string // viewer | owner
	CreatedAt     time.Time
}

const (
	principalUser  = "user"
	principalGroup = "group"
	roleViewer     = "viewer"
	roleOwner      = "owner"
)

const permissionCols = `id, content_guid, principal_type, principal_guid, role, created_at`

func scanPermission(r scanner) (Permission, error) {
	var p Permission
	var created int64
	err := r.Scan(&p.ID, &p.ContentGUID, &p.PrincipalType, &p.PrincipalGUID, &p.Role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return p, errNotFound
	}
	p.CreatedAt = fromMS(created)
	return p, err
}

func (s *store) createPermission(ctx context.Context, p Permission) (Permission, error) {
	p.CreatedAt = s.now()
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM content_permissions WHERE content_guid = ? AND principal_type = ? AND principal_guid = ?`,
			p.ContentGUID, p.PrincipalType, p.PrincipalGUID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errConflict
		}
		id, err := nextID(ctx, tx, "permission")
		if err != nil {
			return err
		}
		p.ID = id
		_, err = tx.ExecContext(ctx, `INSERT INTO content_permissions (`+permissionCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
			p.ID, p.ContentGUID, p.PrincipalType, p.PrincipalGUID, p.Role, ms(p.CreatedAt))
		return err
	})
	if err != nil && !errors.Is(err, errConflict) {
		err = fmt.Errorf("create permission: %w", err)
	}
	return p, err
}

func (s *store) permission(ctx context.Context, guid string, id int64) (Permission, error) {
	return scanPermission(s.db.QueryRowContext(ctx, `SELECT `+permissionCols+` FROM content_permissions WHERE content_guid = ? AND id = ?`, guid, id))
}

func (s *store) listPermissions(ctx context.Context, guid string) ([]Permission, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+permissionCols+` FROM content_permissions WHERE content_guid = ? ORDER BY id`, guid)
	if err != nil {
		return nil, fmt.Errorf("list permissions: %w", err)
	}
	return collect(rows, scanPermission)
}

// updatePermission rewrites the principal and role of permission p.ID.
func (s *store) updatePermission(ctx context.Context, p Permission) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM content_permissions WHERE content_guid = ? AND principal_type = ? AND principal_guid = ? AND id <> ?`,
		p.ContentGUID, p.PrincipalType, p.PrincipalGUID, p.ID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return errConflict
	}
	res, err := s.db.ExecContext(ctx, `UPDATE content_permissions SET principal_type = ?, principal_guid = ?, role = ? WHERE content_guid = ? AND id = ?`,
		p.PrincipalType, p.PrincipalGUID, p.Role, p.ContentGUID, p.ID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

func (s *store) deletePermission(ctx context.Context, guid string, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM content_permissions WHERE content_guid = ? AND id = ?`, guid, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

// principalFilter matches permission rows naming the user directly or one
// of their groups; it takes the user id twice.
const principalFilter = `((principal_type = 'user' AND principal_guid = ?) OR
	(principal_type = 'group' AND principal_guid IN (SELECT group_guid FROM group_members WHERE user_id = ?)))`

// permissionRoles maps each content GUID the user has a permission on
// (directly or through a group) to the best role: owner over viewer.
func (s *store) permissionRoles(ctx context.Context, userID string) (map[string]string, error) {
	roles := map[string]string{}
	if userID == "" {
		return roles, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT content_guid, role FROM content_permissions WHERE `+principalFilter, userID, userID)
	if err != nil {
		return nil, fmt.Errorf("permission roles: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var guid, role string
		if err := rows.Scan(&guid, &role); err != nil {
			return nil, err
		}
		if roles[guid] != roleOwner {
			roles[guid] = role
		}
	}
	return roles, rows.Err()
}

// Access levels of a user to a content item.
type access int

const (
	accessNone access = iota
	accessView        // may see it (and its permissions, tags, vanity URL)
	accessEdit        // owner, admin or collaborator: may change and deploy it
)

// accessTo is what u may do with ct. Anonymous visitors have an empty ID.
// role is u's best permission role on ct ("" for none). An owner
// permission makes publishers collaborators; users with the viewer role
// (say, through a group) only view.
func accessTo(ct Content, u auth.User, role string) access {
	switch {
	case u.ID != "" && (u.ID == ct.OwnerID || isAdmin(u) || role == roleOwner && canPublish(u)):
		return accessEdit
	case u.ID != "" && (role != "" || ct.AccessType == "logged_in"),
		ct.AccessType == "all":
		return accessView
	}
	return accessNone
}

// contentRole is u's best permission role on the content item.
func (s *store) contentRole(ctx context.Context, guid, userID string) (string, error) {
	if userID == "" {
		return "", nil
	}
	return s.servingRoles.Get(ctx, s.db, guid+"\x00"+userID, func() (string, error) { return s.loadContentRole(ctx, guid, userID) })
}

func (s *store) loadContentRole(ctx context.Context, guid, userID string) (string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT role FROM content_permissions WHERE content_guid = ? AND `+principalFilter, guid, userID, userID)
	if err != nil {
		return "", fmt.Errorf("content role: %w", err)
	}
	defer rows.Close()
	best := ""
	for rows.Next() {
		var role string
		if err := rows.Scan(&role); err != nil {
			return "", err
		}
		if best != roleOwner {
			best = role
		}
	}
	return best, rows.Err()
}

// access is u's access to ct.
func (s *store) access(ctx context.Context, ct Content, u auth.User) (access, error) {
	if u.ID != "" && (u.ID == ct.OwnerID || isAdmin(u)) {
		return accessEdit, nil
	}
	role, err := s.contentRole(ctx, ct.GUID, u.ID)
	if err != nil {
		return accessNone, err
	}
	return accessTo(ct, u, role), nil
}

// CanView reports whether u may see the content item: its owner, admins,
// users with a permission on it (directly or through a group), any
// signed-in user when access_type is logged_in, and anyone (u with an
// empty ID is an anonymous visitor) when it is all. Unknown content is
// (false, nil).
func (s *store) CanView(ctx context.Context, guid string, u auth.User) (bool, error) {
	ct, err := s.content(ctx, guid)
	if errors.Is(err, errNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	a, err := s.access(ctx, ct, u)
	return a >= accessView, err
}

// listViewableContent is listContent (name and owner filters) narrowed to
// what u may see, each item with u's permission role on it.
func (s *store) listViewableContent(ctx context.Context, name, ownerID string, u auth.User) ([]Content, map[string]string, error) {
	list, err := s.listContent(ctx, name, ownerID)
	if err != nil {
		return nil, nil, err
	}
	roles, err := s.permissionRoles(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	out := list[:0]
	for _, ct := range list {
		if accessTo(ct, u, roles[ct.GUID]) >= accessView {
			out = append(out, ct)
		}
	}
	return out, roles, nil
}

// ---- Tags ----

// Tag is a node of the tag tree; ParentID 0 is the top level.
type Tag struct {
	ID        int64
	Name      string
	ParentID  int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

const tagCols = `id, name, parent_id, created_at, updated_at`

func scanTag(r scanner) (Tag, error) {
	var t Tag
	var created, updated int64
	err := r.Scan(&t.ID, &t.Name, &t.ParentID, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return t, errNotFound
	}
	t.CreatedAt, t.UpdatedAt = fromMS(created), fromMS(updated)
	return t, err
}

func collectTags(rows *sql.Rows, err error) ([]Tag, error) {
	if err != nil {
		return nil, fmt.Errorf("list tags: %w", err)
	}
	return collect(rows, scanTag)
}

func (s *store) tag(ctx context.Context, id int64) (Tag, error) {
	return scanTag(s.db.QueryRowContext(ctx, `SELECT `+tagCols+` FROM tags WHERE id = ?`, id))
}

// listTags filters by exact name (when not empty) and parent (when
// parentID ≥ 0; 0 is the top level).
func (s *store) listTags(ctx context.Context, name string, parentID int64) ([]Tag, error) {
	q := `SELECT ` + tagCols + ` FROM tags WHERE 1 = 1`
	var args []any
	if name != "" {
		q += ` AND name = ?`
		args = append(args, name)
	}
	if parentID >= 0 {
		q += ` AND parent_id = ?`
		args = append(args, parentID)
	}
	return collectTags(s.db.QueryContext(ctx, q+` ORDER BY id`, args...))
}

func (s *store) createTag(ctx context.Context, t Tag) (Tag, error) {
	t.CreatedAt = s.now()
	t.UpdatedAt = t.CreatedAt
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tags WHERE parent_id = ? AND name = ?`, t.ParentID, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errConflict
		}
		id, err := nextID(ctx, tx, "tag")
		if err != nil {
			return err
		}
		t.ID = id
		_, err = tx.ExecContext(ctx, `INSERT INTO tags (`+tagCols+`) VALUES (?, ?, ?, ?, ?)`, t.ID, t.Name, t.ParentID, ms(t.CreatedAt), ms(t.UpdatedAt))
		return err
	})
	if err != nil && !errors.Is(err, errConflict) {
		err = fmt.Errorf("create tag: %w", err)
	}
	return t, err
}

// updateTag writes t's name and parent.
func (s *store) updateTag(ctx context.Context, t Tag) (Tag, error) {
	t.UpdatedAt = s.now()
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM tags WHERE parent_id = ? AND name = ? AND id <> ?`, t.ParentID, t.Name, t.ID).Scan(&n); err != nil {
		return t, err
	}
	if n > 0 {
		return t, errConflict
	}
	_, err := s.db.ExecContext(ctx, `UPDATE tags SET name = ?, parent_id = ?, updated_at = ? WHERE id = ?`, t.Name, t.ParentID, ms(t.UpdatedAt), t.ID)
	return t, err
}

// tagDescendants are the ids of the tag's subtree, the tag included.
func tagDescendants(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, id int64) ([]int64, error) {
	ids := []int64{id}
	for i := 0; i < len(ids); i++ {
		rows, err := q.QueryContext(ctx, `SELECT id FROM tags WHERE parent_id = ?`, ids[i])
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c int64
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return nil, err
			}
			ids = append(ids, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// isTagDescendant reports whether candidate is in the subtree of id.
func (s *store) isTagDescendant(ctx context.Context, id, candidate int64) (bool, error) {
	ids, err := tagDescendants(ctx, s.db, id)
	if err != nil {
		return false, err
	}
	for _, d := range ids {
		if d == candidate {
			return true, nil
		}
	}
	return false, nil
}

// deleteTag removes the tag and its subtree (and their content links).
func (s *store) deleteTag(ctx context.Context, id int64) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		ids, err := tagDescendants(ctx, tx, id)
		if err != nil {
			return err
		}
		for i := len(ids) - 1; i >= 0; i-- {
			if _, err := tx.ExecContext(ctx, `DELETE FROM content_tags WHERE tag_id = ?`, ids[i]); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM tags WHERE id = ?`, ids[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *store) contentTags(ctx context.Context, guid string) ([]Tag, error) {
	return collectTags(s.db.QueryContext(ctx, `SELECT `+tagCols+` FROM tags WHERE id IN (SELECT tag_id FROM content_tags WHERE content_guid = ?) ORDER BY id`, guid))
}

// addContentTag tags the content with the tag and with every tag above it
// except the category at the top, as Posit Connect does (posit-sdk's
// ContentItemTags.add), so that a tag's content includes the content of
// the tags below it.
func (s *store) addContentTag(ctx context.Context, guid string, tagID int64) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		for id := tagID; ; {
			var parent int64
			if err := tx.QueryRowContext(ctx, `SELECT parent_id FROM tags WHERE id = ?`, id).Scan(&parent); errors.Is(err, sql.ErrNoRows) {
				return errNotFound
			} else if err != nil {
				return fmt.Errorf("add content tag: %w", err)
			}
			if parent == 0 {
				return nil // a category is never a content tag
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO content_tags (content_guid, tag_id) VALUES (?, ?) ON CONFLICT (content_guid, tag_id) DO NOTHING`, guid, id); err != nil {
				return fmt.Errorf("add content tag: %w", err)
			}
			id = parent
		}
	})
}

// removeContentTag takes the tag and every tag below it off the content
// (the tags below mean the tag, so they cannot stay without it). It is not
// an error if the content had none of them.
func (s *store) removeContentTag(ctx context.Context, guid string, tagID int64) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		ids, err := tagDescendants(ctx, tx, tagID)
		if err != nil {
			return fmt.Errorf("remove content tag: %w", err)
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `DELETE FROM content_tags WHERE content_guid = ? AND tag_id = ?`, guid, id); err != nil {
				return fmt.Errorf("remove content tag: %w", err)
			}
		}
		return nil
	})
}

// taggedContent lists the content items carrying the tag.
func (s *store) taggedContent(ctx context.Context, tagID int64) ([]Content, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+contentCols+` FROM content WHERE guid IN (SELECT content_guid FROM content_tags WHERE tag_id = ?) ORDER BY created_at, guid`, tagID)
	if err != nil {
		return nil, fmt.Errorf("tagged content: %w", err)
	}
	return collect(rows, scanContent)
}

// ---- Vanity URLs ----

// Vanity is a content item's custom path, "/like/this/".
type Vanity struct {
	ContentGUID string
	Path        string
	CreatedAt   time.Time
}

// vanity is the content's vanity URL, errNotFound when it has none.
func (s *store) vanity(ctx context.Context, guid string) (Vanity, error) {
	v := Vanity{ContentGUID: guid}
	var path sql.NullString
	var created sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT vanity_path, vanity_created_at FROM content WHERE guid = ?`, guid).Scan(&path, &created)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !path.Valid {
		return v, errNotFound
	}
	v.Path, v.CreatedAt = path.String, fromMS(created.Int64)
	return v, err
}

// listVanities is every vanity URL, by path.
func (s *store) listVanities(ctx context.Context) ([]Vanity, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT guid, vanity_path, COALESCE(vanity_created_at, 0) FROM content WHERE vanity_path IS NOT NULL ORDER BY vanity_path`)
	if err != nil {
		return nil, fmt.Errorf("list vanities: %w", err)
	}
	defer rows.Close()
	list := []Vanity{}
	for rows.Next() {
		var v Vanity
		var created int64
		if err := rows.Scan(&v.ContentGUID, &v.Path, &created); err != nil {
			return nil, err
		}
		v.CreatedAt = fromMS(created)
		list = append(list, v)
	}
	return list, rows.Err()
}

// ContentByVanity is the content whose vanity path is path ("/x/y/", as
// stored), errNotFound when none: for serving vanity URLs.
func (s *store) ContentByVanity(ctx context.Context, path string) (Content, error) {
	return scanContent(s.db.QueryRowContext(ctx, `SELECT `+contentCols+` FROM content WHERE vanity_path = ?`, path))
}

// setVanity gives the content the path. A path that is another item's, or
// the parent or a child of another item's, is errConflict unless force,
// which takes it from the others.
func (s *store) setVanity(ctx context.Context, guid, path string, force bool) (Vanity, error) {
	v := Vanity{ContentGUID: guid, Path: path, CreatedAt: s.now()}
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT guid, vanity_path FROM content WHERE vanity_path IS NOT NULL AND guid <> ?`, guid)
		if err != nil {
			return err
		}
		var clash []string
		for rows.Next() {
			var g, p string
			if err := rows.Scan(&g, &p); err != nil {
				rows.Close()
				return err
			}
			if strings.HasPrefix(p, path) || strings.HasPrefix(path, p) {
				clash = append(clash, g)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(clash) > 0 && !force {
			return errConflict
		}
		for _, g := range clash {
			if _, err := tx.ExecContext(ctx, `UPDATE content SET vanity_path = NULL, vanity_created_at = NULL WHERE guid = ?`, g); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE content SET vanity_path = ?, vanity_created_at = ? WHERE guid = ?`, path, ms(v.CreatedAt), guid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound
		}
		return nil
	})
	return v, err
}

func (s *store) deleteVanity(ctx context.Context, guid string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE content SET vanity_path = NULL, vanity_created_at = NULL WHERE guid = ? AND vanity_path IS NOT NULL`, guid)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

// groupNamesOf lists the names of the groups userID belongs to, by name.
func (s *store) groupNamesOf(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT g.name FROM connect_groups g JOIN group_members m ON m.group_guid = g.guid
		WHERE m.user_id = ? ORDER BY g.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("groups of user: %w", err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}
