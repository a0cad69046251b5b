package connect

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// Users come from the suite's directory (shared/accounts); groups are
// Connect's own, made of directory users.

const (
	defaultPageSize = 20
	maxPageSize     = 500 // posit-sdk's Paginator asks for 500
)

// paging reads page_number (from 1) and page_size (1-500).
func paging(c *gin.Context) (page, size int, ok bool) {
	return pagingOf(c, defaultPageSize, false)
}

// pagingOf reads page_number (from 1) and page_size (from 1, def when
// absent); a page_size above maxPageSize is refused, or served as
// maxPageSize with clamp.
func pagingOf(c *gin.Context, def int, clamp bool) (page, size int, ok bool) {
	page, size = 1, def
	if v := c.Query("page_number"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			c.Error(badRequest("page_number must be a whole number from 1"))
			return 0, 0, false
		}
		page = n
	}
	if v := c.Query("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize && !clamp {
			c.Error(badRequest("page_size must be a whole number from 1 to %d", maxPageSize))
			return 0, 0, false
		}
		size = min(n, maxPageSize)
	}
	return page, size, true
}

// pageJSON is Connect's paged answer. posit-sdk unpacks it into a dataclass,
// so it must have exactly these keys.
func pageJSON(all []gin.H, page, size int) gin.H {
	lo := len(all)
	if page-1 < len(all)/size+1 { // (page-1)*size cannot overflow
		lo = min((page-1)*size, len(all))
	}
	hi := min(lo+size, len(all))
	return gin.H{"results": all[lo:hi], "current_page": page, "total": len(all)}
}

func accountUserJSON(au accounts.User) gin.H {
	return userJSON(au.ID, au.Username, au.Name, au.Email, string(au.Role), au.Locked, au.CreatedAt)
}

// matchesPrefix is Connect's user prefix filter: username, first or last
// name, ignoring case.
func matchesPrefix(au accounts.User, prefix string) bool {
	if prefix == "" {
		return true
	}
	prefix = strings.ToLower(prefix)
	first, last, _ := strings.Cut(strings.TrimSpace(au.Name), " ")
	for _, f := range []string{au.Username, first, strings.TrimSpace(last)} {
		if strings.HasPrefix(strings.ToLower(f), prefix) {
			return true
		}
	}
	return false
}

// listUsers is GET /v1/users: the directory's users, filtered by prefix,
// user_role (administrator|publisher|viewer, '|'-separated) and
// account_status (locked|licensed|inactive), paged.
func (s *Server) listUsers(c *gin.Context) {
	page, size, ok := paging(c)
	if !ok {
		return
	}
	roles := map[string]bool{}
	if v := c.Query("user_role"); v != "" {
		for _, r := range strings.Split(v, "|") {
			switch r = strings.TrimSpace(strings.ToLower(r)); r {
			case "administrator", "admin":
				roles[string(accounts.RoleAdmin)] = true
			case "publisher", "viewer":
				roles[r] = true
			default:
				c.Error(badRequest("user_role %q is not one of administrator, publisher, viewer", r))
				return
			}
		}
	}
	var wantLocked, wantLicensed bool
	statusFilter := false
	if v := c.Query("account_status"); v != "" {
		statusFilter = true
		for _, st := range strings.Split(v, "|") {
			switch strings.TrimSpace(strings.ToLower(st)) {
			case "locked":
				wantLocked = true
			case "licensed":
				wantLicensed = true
			case "inactive": // activity is not tracked: no user is inactive
			default:
				c.Error(badRequest("account_status %q is not one of locked, licensed, inactive", st))
				return
			}
		}
	}
	users, err := s.Accounts.ListUsers(c.Request.Context())
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	all := []gin.H{}
	for _, au := range users {
		if !matchesPrefix(au, c.Query("prefix")) ||
			len(roles) > 0 && !roles[string(au.Role)] ||
			statusFilter && !(au.Locked && wantLocked || !au.Locked && wantLicensed) {
			continue
		}
		all = append(all, accountUserJSON(au))
	}
	c.JSON(http.StatusOK, pageJSON(all, page, size))
}

func groupJSON(g Group) gin.H {
	return gin.H{"guid": g.GUID, "name": g.Name, "owner_guid": g.OwnerID}
}

// listGroups is GET /v1/groups, filtered by a name prefix (ignoring case)
// and paged.
func (s *Server) listGroups(c *gin.Context) {
	page, size, ok := paging(c)
	if !ok {
		return
	}
	groups, err := s.st.listGroups(c.Request.Context())
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	prefix := strings.ToLower(c.Query("prefix"))
	all := []gin.H{}
	for _, g := range groups {
		if strings.HasPrefix(strings.ToLower(g.Name), prefix) {
			all = append(all, groupJSON(g))
		}
	}
	c.JSON(http.StatusOK, pageJSON(all, page, size))
}

// loadGroup loads the group in the path.
func (s *Server) loadGroup(c *gin.Context) (Group, bool) {
	g, err := s.st.group(c.Request.Context(), c.Param("guid"))
	if errors.Is(err, errNotFound) {
		c.Error(notFound("group"))
		return g, false
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return g, false
	}
	return g, true
}

// managedGroup loads the group in the path if the caller owns it or is an
// admin.
func (s *Server) managedGroup(c *gin.Context) (Group, bool) {
	g, ok := s.loadGroup(c)
	if !ok {
		return g, false
	}
	if u, _ := auth.CurrentUser(c); u.ID != g.OwnerID && !isAdmin(u) {
		c.Error(apiError(http.StatusForbidden, codeForbidden, "only the group's owner or an admin may change group %q", g.Name))
		return g, false
	}
	return g, true
}

func (s *Server) getGroup(c *gin.Context) {
	if g, ok := s.loadGroup(c); ok {
		c.JSON(http.StatusOK, groupJSON(g))
	}
}

func (s *Server) createGroup(c *gin.Context) {
	u, _ := auth.CurrentUser(c)
	if !canPublish(u) {
		c.Error(apiError(http.StatusForbidden, codeForbidden, "creating groups requires the publisher or admin role"))
		return
	}
	var body struct {
		Name string `json:"name"`
	}
	if !bindJSON(c, &body) {
		return
	}
	name := strings.TrimSpace(body.Name)
	if name == "" || utf8.RuneCountInString(name) > 255 || strings.ContainsFunc(name, unicode.IsControl) {
		c.Error(badRequest("a group needs a name of 1-255 characters without control characters"))
		return
	}
	g, err := s.st.createGroup(c.Request.Context(), Group{GUID: newGUID(), Name: name, OwnerID: u.ID})
	if errors.Is(err, errConflict) {
		c.Error(apiError(http.StatusConflict, codeConflict, "a group named %q exists", name))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, groupJSON(g))
}

func (s *Server) deleteGroup(c *gin.Context) {
	g, ok := s.managedGroup(c)
	if !ok {
		return
	}
	if err := s.st.deleteGroup(c.Request.Context(), g.GUID); err != nil && !errors.Is(err, errNotFound) {
		c.Error(httpx.Internal(err))
		return
	}
	c.Status(http.StatusNoContent)
}

// listGroupMembers is GET /v1/groups/{guid}/members: the members as users,
// paged.
func (s *Server) listGroupMembers(c *gin.Context) {
	g, ok := s.loadGroup(c)
	if !ok {
		return
	}
	page, size, ok := paging(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	ids, err := s.st.groupMembers(ctx, g.GUID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	all := []gin.H{}
	for _, id := range ids {
		au, err := s.Accounts.User(ctx, id)
		if errors.Is(err, accounts.ErrNotFound) {
			continue // removed from the directory
		} else if err != nil {
			c.Error(httpx.Internal(err))
			return
		}
		all = append(all, accountUserJSON(au))
	}
	c.JSON(http.StatusOK, pageJSON(all, page, size))
}

func (s *Server) addGroupMember(c *gin.Context) {
	g, ok := s.managedGroup(c)
	if !ok {
		return
	}
	var body struct {
		UserGUID string `json:"user_guid"`
	}
	if !bindJSON(c, &body) {
		return
	}
	ctx := c.Request.Context()
	if _, err := s.Accounts.User(ctx, body.UserGUID); errors.Is(err, accounts.ErrNotFound) || body.UserGUID == "" {
		c.Error(notFound("user"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	if err := s.st.addGroupMember(ctx, g.GUID, body.UserGUID); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) removeGroupMember(c *gin.Context) {
	g, ok := s.managedGroup(c)
	if !ok {
		return
	}
	err := s.st.removeGroupMember(c.Request.Context(), g.GUID, c.Param("user_guid"))
	if errors.Is(err, errNotFound) {
		c.Error(notFound("group member"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.Status(http.StatusNoContent)
}

// createUserBody is POST /v1/users as posit-sdk's users.create sends it.
type createUserBody struct {
	Username            string `json:"username"`
	Password            string `json:"password"`
	UserMustSetPassword bool   `json:"user_must_set_password"`
	Email               string `json:"email"`
	FirstName           string `json:"first_name"`
	LastName            string `json:"last_name"`
	UserRole            string `json:"user_role"`
	UniqueID            string `json:"unique_id"`
}

// userRole maps Connect's role names to the directory's.
func userRole(r string) (accounts.Role, bool) {
	switch strings.ToLower(strings.TrimSpace(r)) {
	case "":
		return accounts.RoleViewer, true // Connect's default role
	case "administrator", "admin":
		return accounts.RoleAdmin, true
	case "publisher":
		return accounts.RolePublisher, true
	case "viewer":
		return accounts.RoleViewer, true
	}
	return "", false
}

// accountsError turns the directory's refusals into Connect's error shape.
func accountsError(err error) *httpx.Error {
	switch {
	case errors.Is(err, accounts.ErrInvalid):
		return badRequest("%s", strings.TrimPrefix(err.Error(), accounts.ErrInvalid.Error()+": "))
	case errors.Is(err, accounts.ErrExists):
		return apiError(http.StatusConflict, codeConflict, "%v", err)
	case errors.Is(err, accounts.ErrNotFound):
		return notFound("user")
	}
	return httpx.Internal(err)
}

// createUser is POST /v1/users: an admin adds a user to the suite's
// directory, as Posit Connect does with password authentication. The user
// signs in to every product with the password given here; without one they
// can use only API keys. user_must_set_password is refused: Connect then
// asks the user for a password at their first sign-in, which the suite's
// provider has no step for.
func (s *Server) createUser(c *gin.Context) {
	if !requireAdmin(c, "creating users") {
		return
	}
	var body createUserBody
	if !bindJSON(c, &body) {
		return
	}
	if body.UniqueID != "" {
		c.Error(badRequest("unique_id applies to external authentication providers; users created here are local to the suite's directory"))
		return
	}
	if body.UserMustSetPassword {
		c.Error(badRequest("user_must_set_password is not supported: give the user a password"))
		return
	}
	role, ok := userRole(body.UserRole)
	if !ok {
		c.Error(badRequest("user_role %q is not one of administrator, publisher, viewer", body.UserRole))
		return
	}
	if err := accounts.ValidUsername(body.Username); err != nil {
		c.Error(accountsError(err))
		return
	}
	name := strings.TrimSpace(strings.TrimSpace(body.FirstName) + " " + strings.TrimSpace(body.LastName))
	au, err := s.Accounts.AddUser(c.Request.Context(), accounts.NewUser{
		Username: body.Username, Name: name, Email: body.Email, Password: body.Password, Role: role,
	})
	if err != nil {
		c.Error(accountsError(err))
		return
	}
	c.JSON(http.StatusOK, accountUserJSON(au))
}

// lockUser is POST /v1/users/{guid}/lock {locked}: an admin locks or
// unlocks a user. Locking ends the user's sign-ins and stops their API
// keys in every product at once (shared/accounts). posit-sdk refuses to
// lock the caller's own account unless asked to force it, so the server
// allows it, as Posit Connect does.
func (s *Server) lockUser(c *gin.Context) {
	if !requireAdmin(c, "locking users") {
		return
	}
	var body struct {
		Locked *bool `json:"locked"`
	}
	if !bindJSON(c, &body) {
		return
	}
	if body.Locked == nil {
		c.Error(badRequest("the body must say {\"locked\": true} or {\"locked\": false}"))
		return
	}
	ctx := c.Request.Context()
	au, err := s.Accounts.User(ctx, c.Param("guid"))
	if err != nil {
		c.Error(accountsError(err))
		return
	}
	if err := s.Accounts.SetLocked(ctx, au.Username, *body.Locked); err != nil {
		c.Error(accountsError(err))
		return
	}
	au.Locked = *body.Locked
	c.JSON(http.StatusOK, accountUserJSON(au))
}
