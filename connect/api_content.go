package connect

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// contentNamePattern is Connect's rule for content names.
var contentNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{3,64}$`)

// contentJSON is Connect's v1 content record with the fields rsconnect and
// posit-sdk read.
func (s *Server) contentJSON(c Content, viewer auth.User) gin.H {
	var bundleID any
	if c.ActiveBundleID != 0 {
		bundleID = bundleIDString(c.ActiveBundleID)
	}
	role := "viewer"
	if c.OwnerID == viewer.ID {
		role = "owner"
	}
	return gin.H{
		// Connect's numeric v0 id has no meaning here; the GUID contains
		// hyphens, which is how rsconnect tells it apart (get_content_by_id).
		"id":                  c.GUID,
		"guid":                c.GUID,
		"name":                c.Name,
		"title":               nullIfEmpty(c.Title),
		"description":         c.Description,
		"access_type":         c.AccessType,
		"locked":              false,
		"locked_message":      "",
		"app_mode":            c.AppMode,
		"content_category":    "",
		"parameterized":       false,
		"cluster_name":        "Local",
		"image_name":          nil,
		"r_version":           nil,
		"py_version":          nil,
		"quarto_version":      nil,
		"run_as":              nil,
		"run_as_current_user": false,
		"owner_guid":          c.OwnerID,
		"bundle_id":           bundleID,
		"created_time":        timeJSON(c.CreatedAt),
		"last_deployed_time":  timeJSON(c.UpdatedAt),
		"content_url":         s.URL() + "/content/" + c.GUID + "/",
		"dashboard_url":       s.URL() + "/connect/#/apps/" + c.GUID,
		"app_role":            role,
		// The scheduler's settings: null means the server's default.
		"min_processes":         nullable(c.Sched.MinProcesses),
		"max_processes":         nullable(c.Sched.MaxProcesses),
		"max_conns_per_process": nullable(c.Sched.MaxConnsPerProcess),
		"load_factor":           nullable(c.Sched.LoadFactor),
		"idle_timeout":          nullable(c.Sched.IdleTimeout),
		"init_timeout":          nullable(c.Sched.InitTimeout),
	}
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// withOwner adds "owner" for ?include=owner (posit-sdk always asks).
func (s *Server) withOwner(c *gin.Context, j gin.H, ownerID string) gin.H {
	if !strings.Contains(c.Query("include"), "owner") {
		return j
	}
	if au, err := s.Accounts.User(c.Request.Context(), ownerID); err == nil {
		first, last, _ := strings.Cut(au.Name, " ")
		j["owner"] = gin.H{"guid": au.ID, "username": au.Username, "first_name": first, "last_name": last}
	}
	return j
}

// visible loads content the caller may manage (change, upload to, deploy):
// its owner, collaborators (an owner permission, directly or through a
// group) and admins. Callers who may only view it get 403; others get 404,
// so GUIDs of others' content cannot be probed.
func (s *Server) visible(c *gin.Context) (Content, auth.User, bool) {
	return s.contentWith(c, accessEdit)
}

// viewable loads content the caller may see (store.CanView's rule).
func (s *Server) viewable(c *gin.Context) (Content, auth.User, bool) {
	return s.contentWith(c, accessView)
}

func (s *Server) contentWith(c *gin.Context, need access) (Content, auth.User, bool) {
	u, _ := auth.CurrentUser(c)
	ctx := c.Request.Context()
	ct, err := s.st.content(ctx, c.Param("guid"))
	if errors.Is(err, errNotFound) {
		c.Error(notFound("content"))
		return ct, u, false
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return ct, u, false
	}
	a, err := s.st.access(ctx, ct, u)
	switch {
	case err != nil:
		c.Error(httpx.Internal(err))
	case a >= need:
		return ct, u, true
	case a == accessNone:
		c.Error(notFound("content"))
	default:
		c.Error(apiError(http.StatusForbidden, codeForbidden, "you may view this content but not change it; ask its owner for the owner (collaborator) permission"))
	}
	return ct, u, false
}

// listContent lists the content the caller may see (admins: all),
// filtered by name and owner_guid.
func (s *Server) listContent(c *gin.Context) {
	u, _ := auth.CurrentUser(c)
	ctx := c.Request.Context()
	var list []Content
	roles := map[string]string{}
	var err error
	if isAdmin(u) {
		list, err = s.st.listContent(ctx, c.Query("name"), c.Query("owner_guid"))
	} else {
		list, roles, err = s.st.listViewableContent(ctx, c.Query("name"), c.Query("owner_guid"), u)
	}
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	out := make([]gin.H, 0, len(list))
	for _, ct := range list {
		j := s.withOwner(c, s.contentJSON(ct, u), ct.OwnerID)
		if err := s.withIncludes(c, j, ct, roles[ct.GUID]); err != nil {
			c.Error(httpx.Internal(err))
			return
		}
		out = append(out, j)
	}
	c.JSON(http.StatusOK, out)
}

// contentPatch is the body of POST and PATCH /v1/content: the fields that
// can be set; absent ones are kept.
type contentPatch struct {
	Name        *string `json:"name"`
	Title       *string `json:"title"`
	Description *string `json:"description"`
	AccessType  *string `json:"access_type"`

	// Scheduler settings; null resets one to the server's default.
	MinProcesses       optional[int64]   `json:"min_processes"`
	MaxProcesses       optional[int64]   `json:"max_processes"`
	MaxConnsPerProcess optional[int64]   `json:"max_conns_per_process"`
	LoadFactor         optional[float64] `json:"load_factor"`
	IdleTimeout        optional[int64]   `json:"idle_timeout"`
	InitTimeout        optional[int64]   `json:"init_timeout"`
}

// optional is a JSON field that can be absent (keep), null (reset) or a
// value.
type optional[T any] struct {
	set bool
	v   *T
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.set = true
	return json.Unmarshal(b, &o.v)
}

// apply sets *dst when the field was sent, after checking the value is in
// [lo, hi].
func (o optional[T]) apply(dst **T, name string, lo, hi T, less func(a, b T) bool) *httpx.Error {
	if !o.set {
		return nil
	}
	if o.v != nil && (less(*o.v, lo) || less(hi, *o.v)) {
		return badRequest("%s must be between %v and %v, or null for the server's default", name, lo, hi)
	}
	*dst = o.v
	return nil
}

func lessInt(a, b int64) bool     { return a < b }
func lessFloat(a, b float64) bool { return a < b }

// Bounds on the scheduler settings a content item may choose.
const (
	maxProcessesLimit = 64
	maxConnsLimit     = 10000
	maxTimeoutSeconds = 7 * 24 * 3600
)

func (p contentPatch) applySched(s *Sched) *httpx.Error {
	for _, err := range []*httpx.Error{
		p.MinProcesses.apply(&s.MinProcesses, "min_processes", 0, maxProcessesLimit, lessInt),
		p.MaxProcesses.apply(&s.MaxProcesses, "max_processes", 1, maxProcessesLimit, lessInt),
		p.MaxConnsPerProcess.apply(&s.MaxConnsPerProcess, "max_conns_per_process", 1, maxConnsLimit, lessInt),
		p.LoadFactor.apply(&s.LoadFactor, "load_factor", 0, 1, lessFloat),
		p.IdleTimeout.apply(&s.IdleTimeout, "idle_timeout", 1, maxTimeoutSeconds, lessInt),
		p.InitTimeout.apply(&s.InitTimeout, "init_timeout", 1, 3600, lessInt),
	} {
		if err != nil {
			return err
		}
	}
	if s.MinProcesses != nil && s.MaxProcesses != nil && *s.MinProcesses > *s.MaxProcesses {
		return badRequest("min_processes (%d) must not be more than max_processes (%d)", *s.MinProcesses, *s.MaxProcesses)
	}
	return nil
}

func bindJSON(c *gin.Context, v any) bool {
	dec := json.NewDecoder(c.Request.Body)
	if err := dec.Decode(v); err != nil && err.Error() != "EOF" {
		c.Error(badRequest("the request body is not the JSON object this endpoint takes: %v", err))
		return false
	}
	return true
}

func (p contentPatch) apply(ct *Content) *httpx.Error {
	if p.Name != nil {
		if !contentNamePattern.MatchString(*p.Name) {
			return badRequest("content name %q must be 3-64 characters of letters, digits, '_' and '-'", *p.Name)
		}
		ct.Name = *p.Name
	}
	if p.Title != nil {
		if len(*p.Title) > 1024 {
			return badRequest("title must not be longer than 1024 characters")
		}
		ct.Title = *p.Title
	}
	if p.Description != nil {
		ct.Description = *p.Description
	}
	if p.AccessType != nil {
		switch *p.AccessType {
		case "all", "logged_in", "acl":
			ct.AccessType = *p.AccessType
		default:
			return badRequest("access_type must be one of all, logged_in, acl")
		}
	}
	return p.applySched(&ct.Sched)
}

func (s *Server) createContent(c *gin.Context) {
	u, _ := auth.CurrentUser(c)
	if !canPublish(u) {
		c.Error(apiError(http.StatusForbidden, codeForbidden, "publishing content requires the publisher or admin role"))
		return
	}
	var p contentPatch
	if !bindJSON(c, &p) {
		return
	}
	ct := Content{GUID: newGUID(), OwnerID: u.ID}
	ct.Name = strings.ReplaceAll(ct.GUID, "-", "")[:12] // Connect generates a name when none is given
	if err := p.apply(&ct); err != nil {
		c.Error(err)
		return
	}
	ct, err := s.st.createContent(c.Request.Context(), ct)
	if errors.Is(err, errNameTaken) {
		c.Error(apiError(http.StatusConflict, codeConflict, "you already have content named %q", ct.Name))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, s.contentJSON(ct, u))
}

func (s *Server) getContent(c *gin.Context) {
	ct, u, ok := s.viewable(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	role, err := s.st.contentRole(ctx, ct.GUID, u.ID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	j := s.withOwner(c, s.contentJSON(ct, u), ct.OwnerID)
	if err := s.withIncludes(c, j, ct, role); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, j)
}

func (s *Server) patchContent(c *gin.Context) {
	ct, u, ok := s.visible(c)
	if !ok {
		return
	}
	var p contentPatch
	if !bindJSON(c, &p) {
		return
	}
	if err := p.apply(&ct); err != nil {
		c.Error(err)
		return
	}
	ct, err := s.st.updateContent(c.Request.Context(), ct)
	if errors.Is(err, errNameTaken) {
		c.Error(apiError(http.StatusConflict, codeConflict, "the owner already has content named %q", ct.Name))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	s.rt.reschedule(ct)
	c.JSON(http.StatusOK, s.contentJSON(ct, u))
}

func (s *Server) deleteContent(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	if err := s.st.deleteContent(c.Request.Context(), ct.GUID); err != nil && !errors.Is(err, errNotFound) {
		c.Error(httpx.Internal(err))
		return
	}
	s.rt.remove(c.Request.Context(), ct.GUID)
	c.Status(http.StatusNoContent)
}
