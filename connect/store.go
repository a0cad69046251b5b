package connect

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/atrium-suite/atrium/shared/db"
)

// errNotFound is what the store returns for a missing row.
var errNotFound = errors.New("not found")

// errNameTaken is returned when content with that name exists.
var errNameTaken = errors.New("name taken")

// Content is one row of the content table.
type Content struct {
	GUID           string
	Name           string
	Title          string
	Description    string
	OwnerID        string
	AppMode        string
	AccessType     string
	ActiveBundleID int64 // 0: never deployed
	CreatedAt      time.Time
	UpdatedAt      time.Time
	Sched          Sched
}

// Sched is a content item's own scheduler settings (Posit Connect's
// runtime settings); a nil field takes the server's default.
type Sched struct {
	MinProcesses       *int64
	MaxProcesses       *int64
	MaxConnsPerProcess *int64
	LoadFactor         *float64
	IdleTimeout        *int64 // seconds
	InitTimeout        *int64 // seconds
}

// Bundle is one uploaded archive of a content item.
type Bundle struct {
	ID          int64
	ContentGUID string
	Digest      string
	Size        int64
	ArchiveMD5  string
	AppMode     string
	Manifest    string
	Metadata    string
	OwnerID     string
	CreatedAt   time.Time
}

// Task is a deploy (or other long job) with its status.
type Task struct {
	ID          string
	ContentGUID string
	Kind        string
	UserID      string
	Status      string // running, succeeded, failed
	Code        int
	Error       string
	Result      string
	CreatedAt   time.Time
	FinishedAt  *time.Time
}

const (
	taskRunning   = "running"
	taskSucceeded = "succeeded"
	taskFailed    = "failed"
)

// store is Connect's tables.
type store struct {
	db  *db.DB
	now func() time.Time
	// What every request to content reads, kept while the database is
	// unchanged (db.VersionCache): the content row, the viewer's role on
	// it, and the viewer's credentials header (with their groups).
	servingContent db.VersionCache[Content]
	servingRoles   db.VersionCache[string]
	servingCreds   db.VersionCache[string]
}

func ms(t time.Time) int64           { return t.UnixMilli() }
func fromMS(v int64) time.Time       { return time.UnixMilli(v).UTC() }
func (s *store) nowMS() int64        { return ms(s.now()) }
func newGUID() string                { return uuidV4() }
func newTaskID() string              { return strings.ToLower(rand.Text()[:16]) }
func bundleIDString(id int64) string { return strconv.FormatInt(id, 10) }
func parseBundleID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// uuidV4 is a random RFC 9562 version 4 UUID, the form Connect's GUIDs take.
func uuidV4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

const contentCols = `guid, name, title, description, owner_id, app_mode, access_type, active_bundle_id, created_at, updated_at, ` + schedCols

const schedCols = `min_processes, max_processes, max_conns_per_process, load_factor, idle_timeout, init_timeout`

type scanner interface{ Scan(dest ...any) error }

// collect scans every row with scan and closes rows. The result is never
// nil, so it encodes as a JSON array even when empty.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	list := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rows.Err()
}

func scanContent(r scanner) (Content, error) {
	var c Content
	var active, minP, maxP, maxC, idle, initT sql.NullInt64
	var load sql.NullFloat64
	var created, updated int64
	err := r.Scan(&c.GUID, &c.Name, &c.Title, &c.Description, &c.OwnerID, &c.AppMode, &c.AccessType, &active, &created, &updated,
		&minP, &maxP, &maxC, &load, &idle, &initT)
	if errors.Is(err, sql.ErrNoRows) {
		return c, errNotFound
	}
	c.ActiveBundleID = active.Int64
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	c.Sched = Sched{
		MinProcesses: nullInt(minP), MaxProcesses: nullInt(maxP), MaxConnsPerProcess: nullInt(maxC),
		IdleTimeout: nullInt(idle), InitTimeout: nullInt(initT),
	}
	if load.Valid {
		c.Sched.LoadFactor = &load.Float64
	}
	return c, err
}

func nullInt(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

// schedArgs are Sched's columns as query arguments, NULL for nil.
func (s Sched) args() []any {
	out := []any{}
	for _, p := range []*int64{s.MinProcesses, s.MaxProcesses, s.MaxConnsPerProcess} {
		out = append(out, nullable(p))
	}
	out = append(out, nullable(s.LoadFactor), nullable(s.IdleTimeout), nullable(s.InitTimeout))
	return out
}

func nullable[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func (s *store) createContent(ctx context.Context, c Content) (Content, error) {
	now := s.now()
	c.CreatedAt, c.UpdatedAt = now, now
	if c.AppMode == "" {
		c.AppMode = "unknown"
	}
	if c.AccessType == "" {
		c.AccessType = "acl"
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO content (`+contentCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (owner_id, name) DO NOTHING`,
		append([]any{c.GUID, c.Name, c.Title, c.Description, c.OwnerID, c.AppMode, c.AccessType, ms(now), ms(now)}, c.Sched.args()...)...)
	if err != nil {
		return c, fmt.Errorf("create content: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return c, errNameTaken
	}
	return c, nil
}

func (s *store) content(ctx context.Context, guid string) (Content, error) {
	return scanContent(s.db.QueryRowContext(ctx, `SELECT `+contentCols+` FROM content WHERE guid = ?`, guid))
}

// listContent filters by exact name and owner when they are not empty.
func (s *store) listContent(ctx context.Context, name, ownerID string) ([]Content, error) {
	q := `SELECT ` + contentCols + ` FROM content WHERE 1 = 1`
	var args []any
	if name != "" {
		q += ` AND name = ?`
		args = append(args, name)
	}
	if ownerID != "" {
		q += ` AND owner_id = ?`
		args = append(args, ownerID)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY created_at, guid`, args...)
	if err != nil {
		return nil, fmt.Errorf("list content: %w", err)
	}
	return collect(rows, scanContent)
}

// updateContent writes the editable fields of c.
func (s *store) updateContent(ctx context.Context, c Content) (Content, error) {
	c.UpdatedAt = s.now()
	args := append([]any{c.Name, c.Title, c.Description, c.AccessType, ms(c.UpdatedAt)}, c.Sched.args()...)
	res, err := s.db.ExecContext(ctx, `UPDATE content SET name = ?, title = ?, description = ?, access_type = ?, updated_at = ?,
		min_processes = ?, max_processes = ?, max_conns_per_process = ?, load_factor = ?, idle_timeout = ?, init_timeout = ?
		WHERE guid = ? AND NOT EXISTS (SELECT 1 FROM content o WHERE o.owner_id = ? AND o.name = ? AND o.guid <> ?)`,
		append(args, c.GUID, c.OwnerID, c.Name, c.GUID)...)
	if err != nil {
		return c, fmt.Errorf("update content: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.content(ctx, c.GUID); err != nil {
			return c, err
		}
		return c, errNameTaken
	}
	return c, nil
}

func (s *store) deleteContent(ctx context.Context, guid string) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM bundles WHERE content_guid = ?`, guid); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM content WHERE guid = ?`, guid)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNotFound
		}
		return nil
	})
}

// activate makes bundle the content's active one and records its mode.
func (s *store) activate(ctx context.Context, guid string, bundleID int64, appMode string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE content SET active_bundle_id = ?, app_mode = ?, updated_at = ? WHERE guid = ?`,
		bundleID, appMode, s.nowMS(), guid)
	return err
}

// createBundle allocates the bundle's id and inserts it.
func (s *store) createBundle(ctx context.Context, b Bundle) (Bundle, error) {
	b.CreatedAt = s.now()
	err := s.db.InTx(ctx, func(tx *db.Tx) error {
		// The UPDATE takes the counter row's lock on PostgreSQL, so
		// concurrent uploads get distinct ids on both dialects.
		if _, err := tx.ExecContext(ctx, `UPDATE id_counters SET value = value + 1 WHERE name = 'bundle'`); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT value FROM id_counters WHERE name = 'bundle'`).Scan(&b.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO bundles (id, content_guid, digest, size, archive_md5, app_mode, manifest, metadata, owner_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, b.ContentGUID, b.Digest, b.Size, b.ArchiveMD5, b.AppMode, b.Manifest, b.Metadata, b.OwnerID, ms(b.CreatedAt))
		return err
	})
	if err != nil {
		return b, fmt.Errorf("create bundle: %w", err)
	}
	return b, nil
}

const bundleCols = `id, content_guid, digest, size, archive_md5, app_mode, manifest, metadata, owner_id, created_at`

func scanBundle(r scanner) (Bundle, error) {
	var b Bundle
	var created int64
	err := r.Scan(&b.ID, &b.ContentGUID, &b.Digest, &b.Size, &b.ArchiveMD5, &b.AppMode, &b.Manifest, &b.Metadata, &b.OwnerID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return b, errNotFound
	}
	b.CreatedAt = fromMS(created)
	return b, err
}

func (s *store) bundle(ctx context.Context, guid string, id int64) (Bundle, error) {
	return scanBundle(s.db.QueryRowContext(ctx, `SELECT `+bundleCols+` FROM bundles WHERE content_guid = ? AND id = ?`, guid, id))
}

// latestBundle is the content's newest bundle.
func (s *store) latestBundle(ctx context.Context, guid string) (Bundle, error) {
	return scanBundle(s.db.QueryRowContext(ctx, `SELECT `+bundleCols+` FROM bundles WHERE content_guid = ? ORDER BY id DESC LIMIT 1`, guid))
}

func (s *store) listBundles(ctx context.Context, guid string) ([]Bundle, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+bundleCols+` FROM bundles WHERE content_guid = ? ORDER BY id`, guid)
	if err != nil {
		return nil, fmt.Errorf("list bundles: %w", err)
	}
	return collect(rows, scanBundle)
}

// deleteBundle removes a bundle that is not active.
func (s *store) deleteBundle(ctx context.Context, guid string, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM bundles WHERE content_guid = ? AND id = ?
		AND NOT EXISTS (SELECT 1 FROM content WHERE guid = ? AND active_bundle_id = ?)`, guid, id, guid, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNotFound
	}
	return nil
}

// digestInUse reports whether any bundle still refers to the blob.
func (s *store) digestInUse(ctx context.Context, digest string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM bundles WHERE digest = ?`, digest).Scan(&n)
	return n > 0, err
}

func (s *store) createTask(ctx context.Context, t Task) (Task, error) {
	t.CreatedAt, t.Status = s.now(), taskRunning
	_, err := s.db.ExecContext(ctx, `INSERT INTO tasks (id, content_guid, kind, user_id, status, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.ContentGUID, t.Kind, t.UserID, t.Status, ms(t.CreatedAt))
	if err != nil {
		return t, fmt.Errorf("create task: %w", err)
	}
	return t, nil
}

func (s *store) task(ctx context.Context, id string) (Task, error) {
	var t Task
	var created int64
	var finished sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT id, COALESCE(content_guid, ''), kind, user_id, status, code, error, result, created_at, finished_at
		FROM tasks WHERE id = ?`, id).Scan(&t.ID, &t.ContentGUID, &t.Kind, &t.UserID, &t.Status, &t.Code, &t.Error, &t.Result, &created, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return t, errNotFound
	}
	if err != nil {
		return t, err
	}
	t.CreatedAt = fromMS(created)
	if finished.Valid {
		f := fromMS(finished.Int64)
		t.FinishedAt = &f
	}
	return t, nil
}

// appendOutput adds lines to the end of a task's log.
func (s *store) appendOutput(ctx context.Context, taskID string, lines []string) error {
	return s.db.InTx(ctx, func(tx *db.Tx) error {
		var next int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq) + 1, 0) FROM task_output WHERE task_id = ?`, taskID).Scan(&next); err != nil {
			return err
		}
		for i, l := range lines {
			if _, err := tx.ExecContext(ctx, `INSERT INTO task_output (task_id, seq, line) VALUES (?, ?, ?)`, taskID, next+int64(i), l); err != nil {
				return err
			}
		}
		return nil
	})
}

// output returns the task's lines from first on.
func (s *store) output(ctx context.Context, taskID string, first int64) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT line FROM task_output WHERE task_id = ? AND seq >= ? ORDER BY seq`, taskID, first)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	lines := []string{}
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	return lines, rows.Err()
}

func (s *store) finishTask(ctx context.Context, id string, code int, errMsg, result string) error {
	status := taskSucceeded
	if code != 0 {
		status = taskFailed
	}
	_, err := s.db.ExecContext(ctx, `UPDATE tasks SET status = ?, code = ?, error = ?, result = ?, finished_at = ? WHERE id = ?`,
		status, code, errMsg, result, s.nowMS(), id)
	return err
}

// failUnfinished ends tasks a previous run of the server left running.
func (s *store) failUnfinished(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `UPDATE tasks SET status = ?, code = 1, error = ?, finished_at = ? WHERE status = ?`,
		taskFailed, "the server restarted while this task was running", s.nowMS(), taskRunning)
	return err
}

// contentForServing is content(guid) for the serving path.
func (s *store) contentForServing(ctx context.Context, guid string) (Content, error) {
	return s.servingContent.Get(ctx, s.db, guid, func() (Content, error) { return s.content(ctx, guid) })
}
