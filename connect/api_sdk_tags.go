package connect

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// Tags: a tree of labels admins define and content owners attach. Ids are
// numbers sent as strings; a top-level tag's parent_id is null.

func tagJSON(t Tag) gin.H {
	var parent any
	if t.ParentID != 0 {
		parent = strconv.FormatInt(t.ParentID, 10)
	}
	return gin.H{
		"id":           strconv.FormatInt(t.ID, 10),
		"name":         t.Name,
		"parent_id":    parent,
		"created_time": timeJSON(t.CreatedAt),
		"updated_time": timeJSON(t.UpdatedAt),
	}
}

func tagsJSON(list []Tag) []gin.H {
	out := make([]gin.H, 0, len(list))
	for _, t := range list {
		out = append(out, tagJSON(t))
	}
	return out
}

// parseTagRef reads a tag id from JSON: a string or a number; null or ""
// is 0 (none).
func parseTagRef(raw any) (int64, bool) {
	switch v := raw.(type) {
	case nil:
		return 0, true
	case string:
		if v == "" {
			return 0, true
		}
		return parseBundleID(v)
	case float64:
		if v >= 1 && v == float64(int64(v)) {
			return int64(v), true
		}
	}
	return 0, false
}

func requireAdmin(c *gin.Context, what string) bool {
	if u, _ := auth.CurrentUser(c); !isAdmin(u) {
		c.Error(apiError(http.StatusForbidden, codeForbidden, "%s requires the admin role", what))
		return false
	}
	return true
}

func validTagName(name string) bool {
	return name != "" && utf8.RuneCountInString(name) <= 255 && !strings.ContainsFunc(name, unicode.IsControl)
}

// listTags is GET /v1/tags?name=&parent_id=.
func (s *Server) listTags(c *gin.Context) {
	parent := int64(-1)
	if v, ok := c.GetQuery("parent_id"); ok && v != "" {
		id, ok := parseBundleID(v)
		if !ok {
			c.JSON(http.StatusOK, []gin.H{})
			return
		}
		parent = id
	}
	list, err := s.st.listTags(c.Request.Context(), c.Query("name"), parent)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, tagsJSON(list))
}

// loadTag loads the tag in the path (param name).
func (s *Server) loadTag(c *gin.Context, param string) (Tag, bool) {
	id, ok := parseBundleID(c.Param(param))
	if !ok {
		c.Error(notFound("tag"))
		return Tag{}, false
	}
	t, err := s.st.tag(c.Request.Context(), id)
	if errors.Is(err, errNotFound) {
		c.Error(notFound("tag"))
		return t, false
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return t, false
	}
	return t, true
}

func (s *Server) getTag(c *gin.Context) {
	if t, ok := s.loadTag(c, "id"); ok {
		c.JSON(http.StatusOK, tagJSON(t))
	}
}

type tagBody struct {
	Name     *string `json:"name"`
	ParentID any     `json:"parent_id"`
}

// applyTag writes the body into t, checking the name and that the parent
// exists and is not t or below it.
func (s *Server) applyTag(c *gin.Context, b tagBody, t *Tag, parentGiven bool) *httpx.Error {
	if b.Name != nil {
		t.Name = strings.TrimSpace(*b.Name)
	}
	if !validTagName(t.Name) {
		return badRequest("a tag needs a name of 1-255 characters without control characters")
	}
	if !parentGiven {
		return nil
	}
	parent, ok := parseTagRef(b.ParentID)
	if !ok {
		return badRequest("parent_id must be a tag id or null")
	}
	ctx := c.Request.Context()
	if parent != 0 {
		if _, err := s.st.tag(ctx, parent); errors.Is(err, errNotFound) {
			return badRequest("there is no tag %d to be the parent", parent)
		} else if err != nil {
			return httpx.Internal(err)
		}
		if t.ID != 0 {
			if below, err := s.st.isTagDescendant(ctx, t.ID, parent); err != nil {
				return httpx.Internal(err)
			} else if below {
				return badRequest("a tag cannot be moved below itself")
			}
		}
	}
	t.ParentID = parent
	return nil
}

func (s *Server) createTag(c *gin.Context) {
	if !requireAdmin(c, "creating tags") {
		return
	}
	s.saveTag(c, Tag{}, s.st.createTag)
}

// saveTag applies the request body {name, parent_id} to t and stores it
// with save (create or update), answering with the tag.
func (s *Server) saveTag(c *gin.Context, t Tag, save func(context.Context, Tag) (Tag, error)) {
	var raw map[string]any
	if !bindJSON(c, &raw) {
		return
	}
	b, given := decodeTagBody(raw)
	if err := s.applyTag(c, b, &t, given); err != nil {
		c.Error(err)
		return
	}
	t, err := save(c.Request.Context(), t)
	if errors.Is(err, errConflict) {
		c.Error(apiError(http.StatusConflict, codeConflict, "a tag named %q exists there", t.Name))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, tagJSON(t))
}

// decodeTagBody reads {name, parent_id} and whether parent_id was given.
func decodeTagBody(raw map[string]any) (tagBody, bool) {
	var b tagBody
	if n, ok := raw["name"].(string); ok {
		b.Name = &n
	} else if _, ok := raw["name"]; ok {
		empty := ""
		b.Name = &empty
	}
	p, given := raw["parent_id"]
	b.ParentID = p
	return b, given
}

func (s *Server) patchTag(c *gin.Context) {
	if !requireAdmin(c, "changing tags") {
		return
	}
	t, ok := s.loadTag(c, "id")
	if !ok {
		return
	}
	s.saveTag(c, t, s.st.updateTag)
}

// deleteTag removes the tag and every tag below it.
func (s *Server) deleteTag(c *gin.Context) {
	if !requireAdmin(c, "deleting tags") {
		return
	}
	t, ok := s.loadTag(c, "id")
	if !ok {
		return
	}
	if err := s.st.deleteTag(c.Request.Context(), t.ID); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.Status(http.StatusNoContent)
}

// tagContent lists the content with the tag that the caller may see.
func (s *Server) tagContent(c *gin.Context) {
	t, ok := s.loadTag(c, "id")
	if !ok {
		return
	}
	u, _ := auth.CurrentUser(c)
	ctx := c.Request.Context()
	list, err := s.st.taggedContent(ctx, t.ID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	roles, err := s.st.permissionRoles(ctx, u.ID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	out := []gin.H{}
	for _, ct := range list {
		if accessTo(ct, u, roles[ct.GUID]) < accessView {
			continue
		}
		out = append(out, s.contentJSON(ct, u))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) listContentTags(c *gin.Context) {
	ct, _, ok := s.viewable(c)
	if !ok {
		return
	}
	list, err := s.st.contentTags(c.Request.Context(), ct.GUID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, tagsJSON(list))
}

// addContentTag is POST {tag_id}; it answers with the tag. The tags above
// it (but the category) come with it; a category itself cannot be put on
// content, as in Posit Connect.
func (s *Server) addContentTag(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	var body struct {
		TagID any `json:"tag_id"`
	}
	if !bindJSON(c, &body) {
		return
	}
	id, ok := parseTagRef(body.TagID)
	if !ok || id == 0 {
		c.Error(badRequest("tag_id must be a tag id"))
		return
	}
	ctx := c.Request.Context()
	t, err := s.st.tag(ctx, id)
	if errors.Is(err, errNotFound) {
		c.Error(notFound("tag"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	if t.ParentID == 0 {
		c.Error(badRequest("tag %q is a category (it has no parent): content takes the tags below a category", t.Name))
		return
	}
	if err := s.st.addContentTag(ctx, ct.GUID, t.ID); errors.Is(err, errNotFound) {
		c.Error(notFound("tag"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.JSON(http.StatusOK, tagJSON(t))
}

// removeContentTag is DELETE {tag id}: the tag and the tags below it come
// off the content; 404 only for a tag that does not exist.
func (s *Server) removeContentTag(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	t, ok := s.loadTag(c, "id")
	if !ok {
		return
	}
	if err := s.st.removeContentTag(c.Request.Context(), ct.GUID, t.ID); err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.Status(http.StatusNoContent)
}
