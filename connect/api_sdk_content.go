package connect

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// Content's environment variables, permissions and vanity URL, and the
// include=tags,vanity_url additions to content records.

// withIncludes adds what ?include= asks for besides owner: tags and
// vanity_url, each only when the item has some (as Connect does). role is
// the caller's permission role on ct; collaborators are "editor"s.
func (s *Server) withIncludes(c *gin.Context, j gin.H, ct Content, role string) error {
	if u, _ := auth.CurrentUser(c); role == roleOwner && ct.OwnerID != u.ID {
		j["app_role"] = "editor"
	}
	include := c.Query("include")
	ctx := c.Request.Context()
	if strings.Contains(include, "tags") {
		tags, err := s.st.contentTags(ctx, ct.GUID)
		if err != nil {
			return err
		}
		if len(tags) > 0 {
			j["tags"] = tagsJSON(tags)
		}
	}
	if strings.Contains(include, "vanity_url") {
		v, err := s.st.vanity(ctx, ct.GUID)
		if err == nil {
			j["vanity_url"] = s.URL() + v.Path
		} else if !errors.Is(err, errNotFound) {
			return err
		}
	}
	return nil
}

// ---- Environment variables ----

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)

const maxEnvValue = 64 << 10

// getEnvironment lists the names (never the values) of the content's
// variables.
func (s *Server) getEnvironment(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	s.envNames(c, ct.GUID)
}

func (s *Server) envNames(c *gin.Context, guid string) {
	names, err := s.st.envVarNames(c.Request.Context(), guid)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, names)
}

// patchEnvironment takes [{name, value}]: a string sets the variable,
// null deletes it. It answers with the names, as rsconnect needs a JSON
// body.
func (s *Server) patchEnvironment(c *gin.Context) { s.writeEnvironment(c, false) }

// putEnvironment replaces all the variables with the list (posit-sdk's
// clear() sends []).
func (s *Server) putEnvironment(c *gin.Context) { s.writeEnvironment(c, true) }

func (s *Server) writeEnvironment(c *gin.Context, replace bool) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	var body []struct {
		Name  string  `json:"name"`
		Value *string `json:"value"`
	}
	if !bindJSON(c, &body) {
		return
	}
	updates := map[string]*string{}
	for _, v := range body {
		if err := checkEnvVar(v.Name, v.Value); err != nil {
			c.Error(err)
			return
		}
		updates[v.Name] = v.Value
	}
	if err := s.st.setEnvVars(c.Request.Context(), ct.GUID, updates, replace); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	s.rt.restart(ct.GUID)
	s.envNames(c, ct.GUID)
}

// ---- Permissions ----

func permissionJSON(p Permission) gin.H {
	return gin.H{
		"id":             bundleIDString(p.ID),
		"content_guid":   p.ContentGUID,
		"principal_guid": p.PrincipalGUID,
		"principal_type": p.PrincipalType,
		"role":           p.Role,
	}
}

func (s *Server) listPermissions(c *gin.Context) {
	ct, _, ok := s.viewable(c)
	if !ok {
		return
	}
	list, err := s.st.listPermissions(c.Request.Context(), ct.GUID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	out := make([]gin.H, 0, len(list))
	for _, p := range list {
		out = append(out, permissionJSON(p))
	}
	c.JSON(http.StatusOK, out)
}

// permissionOf loads the permission in the path of content the caller
// may see (need accessView) or manage (accessEdit).
func (s *Server) permissionOf(c *gin.Context, need access) (Permission, bool) {
	ct, _, ok := s.contentWith(c, need)
	if !ok {
		return Permission{}, false
	}
	id, ok := parseBundleID(c.Param("id"))
	if !ok {
		c.Error(notFound("permission"))
		return Permission{}, false
	}
	p, err := s.st.permission(c.Request.Context(), ct.GUID, id)
	if errors.Is(err, errNotFound) {
		c.Error(notFound("permission"))
		return p, false
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return p, false
	}
	return p, true
}

func (s *Server) getPermission(c *gin.Context) {
	if p, ok := s.permissionOf(c, accessView); ok {
		c.JSON(http.StatusOK, permissionJSON(p))
	}
}

type permissionBody struct {
	PrincipalGUID *string `json:"principal_guid"`
	PrincipalType *string `json:"principal_type"`
	Role          *string `json:"role"`
}

// apply checks the body and writes its fields into p; the principal must
// exist, and directory viewers cannot be owners (collaborators).
func (s *Server) applyPermission(c *gin.Context, b permissionBody, p *Permission) *httpx.Error {
	if b.PrincipalGUID != nil {
		p.PrincipalGUID = *b.PrincipalGUID
	}
	if b.PrincipalType != nil {
		p.PrincipalType = *b.PrincipalType
	}
	if b.Role != nil {
		p.Role = *b.Role
	}
	if p.Role != roleViewer && p.Role != roleOwner {
		return badRequest("role must be viewer or owner")
	}
	ctx := c.Request.Context()
	switch p.PrincipalType {
	case principalUser:
		au, err := s.Accounts.User(ctx, p.PrincipalGUID)
		if errors.Is(err, accounts.ErrNotFound) || p.PrincipalGUID == "" {
			return badRequest("there is no user with guid %q", p.PrincipalGUID)
		} else if err != nil {
			return httpx.Internal(err)
		}
		if p.Role == roleOwner && au.Role == accounts.RoleViewer {
			return badRequest("%s has the viewer role and cannot be an owner of content; make them a publisher first", au.Username)
		}
	case principalGroup:
		if _, err := s.st.group(ctx, p.PrincipalGUID); errors.Is(err, errNotFound) {
			return badRequest("there is no group with guid %q", p.PrincipalGUID)
		} else if err != nil {
			return httpx.Internal(err)
		}
	default:
		return badRequest("principal_type must be user or group")
	}
	return nil
}

func (s *Server) createPermission(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	var b permissionBody
	if !bindJSON(c, &b) {
		return
	}
	p := Permission{ContentGUID: ct.GUID}
	if err := s.applyPermission(c, b, &p); err != nil {
		c.Error(err)
		return
	}
	p, err := s.st.createPermission(c.Request.Context(), p)
	if errors.Is(err, errConflict) {
		c.Error(apiError(http.StatusConflict, codeConflict, "the %s already has a permission on this content; update that one", p.PrincipalType))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, permissionJSON(p))
}

// updatePermission is PUT (posit-sdk sends all three fields) and PATCH.
func (s *Server) updatePermission(c *gin.Context) {
	p, ok := s.permissionOf(c, accessEdit)
	if !ok {
		return
	}
	var b permissionBody
	if !bindJSON(c, &b) {
		return
	}
	if err := s.applyPermission(c, b, &p); err != nil {
		c.Error(err)
		return
	}
	err := s.st.updatePermission(c.Request.Context(), p)
	if errors.Is(err, errConflict) {
		c.Error(apiError(http.StatusConflict, codeConflict, "the %s already has another permission on this content", p.PrincipalType))
		return
	} else if errors.Is(err, errNotFound) {
		c.Error(notFound("permission"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, permissionJSON(p))
}

func (s *Server) deletePermission(c *gin.Context) {
	p, ok := s.permissionOf(c, accessEdit)
	if !ok {
		return
	}
	if err := s.st.deletePermission(c.Request.Context(), p.ContentGUID, p.ID); err != nil && !errors.Is(err, errNotFound) {
		c.Error(httpx.Internal(err))
		return
	}
	c.Status(http.StatusNoContent)
}

// ---- Vanity URLs ----

var vanityPattern = regexp.MustCompile(`^/[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*/$`)

// reservedVanities are Connect's own paths (posit-sdk's Vanity docs).
var reservedVanities = []string{"/__", "/favicon.ico", "/connect", "/apps", "/users", "/groups",
	"/setpassword", "/user-completion", "/confirm", "/recent", "/reports", "/plots", "/unpublished",
	"/settings", "/metrics", "/tokens", "/help", "/login", "/welcome", "/register", "/resetpassword", "/content"}

// normalizeVanity makes "a/b" into "/a/b/" and checks it.
func normalizeVanity(p string) (string, *httpx.Error) {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	if !vanityPattern.MatchString(p) {
		return "", badRequest("vanity path %q may only contain letters, digits, '-', '_' and '/'", p)
	}
	lower := strings.ToLower(p)
	for _, r := range reservedVanities {
		if strings.HasPrefix(lower, r+"/") || r == "/__" && strings.HasPrefix(lower, r) {
			return "", badRequest("vanity path %q is reserved by Connect", p)
		}
	}
	return p, nil
}

func vanityJSON(v Vanity) gin.H {
	return gin.H{"content_guid": v.ContentGUID, "path": v.Path, "created_time": timeJSON(v.CreatedAt)}
}

func (s *Server) getVanity(c *gin.Context) {
	ct, _, ok := s.viewable(c)
	if !ok {
		return
	}
	v, err := s.st.vanity(c.Request.Context(), ct.GUID)
	if errors.Is(err, errNotFound) {
		c.Error(notFound("vanity URL"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, vanityJSON(v))
}

// putVanity sets {path, force}; force (admins only) takes the path from
// other content.
func (s *Server) putVanity(c *gin.Context) {
	ct, u, ok := s.visible(c)
	if !ok {
		return
	}
	var body struct {
		Path  string `json:"path"`
		Force bool   `json:"force"`
	}
	if !bindJSON(c, &body) {
		return
	}
	path, herr := normalizeVanity(body.Path)
	if herr != nil {
		c.Error(herr)
		return
	}
	if body.Force && !isAdmin(u) {
		c.Error(apiError(http.StatusForbidden, codeForbidden, "only admins may force a vanity URL"))
		return
	}
	v, err := s.st.setVanity(c.Request.Context(), ct.GUID, path, body.Force)
	if errors.Is(err, errConflict) {
		c.Error(apiError(http.StatusConflict, codeConflict, "vanity path %s is in use by (or overlaps) another content item's", path))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, vanityJSON(v))
}

func (s *Server) deleteVanity(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	if err := s.st.deleteVanity(c.Request.Context(), ct.GUID); errors.Is(err, errNotFound) {
		c.Error(notFound("vanity URL"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.Status(http.StatusNoContent)
}

// listVanities is every vanity URL of content the caller may see.
func (s *Server) listVanities(c *gin.Context) {
	u, _ := auth.CurrentUser(c)
	ctx := c.Request.Context()
	list, err := s.st.listVanities(ctx)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	out := []gin.H{}
	for _, v := range list {
		if !isAdmin(u) {
			if ok, err := s.st.CanView(ctx, v.ContentGUID, u); err != nil {
				c.Error(httpx.Internal(err))
				return
			} else if !ok {
				continue
			}
		}
		out = append(out, vanityJSON(v))
	}
	c.JSON(http.StatusOK, out)
}
