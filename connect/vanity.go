package connect

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/httpx"
)

// serveVanity serves content at its vanity path (/sales-dashboard/ rather
// than /content/{guid}/). It is the engine's fallback for paths no route
// claims: the longest vanity path that prefixes the request wins, and the
// request is served as if it had come to the content's own URL, with the
// same access checks. Anything else is the usual 404.
func (s *Server) serveVanity(c *gin.Context) {
	path := c.Request.URL.Path
	ctx := c.Request.Context()
	// Try /a/b/c/, then /a/b/, then /a/.
	candidate := strings.TrimSuffix(path, "/") + "/"
	for candidate != "/" {
		ct, err := s.st.ContentByVanity(ctx, candidate)
		if err == nil {
			if path+"/" == candidate {
				// /a → /a/, as content URLs do.
				c.Redirect(http.StatusMovedPermanently, candidate)
				return
			}
			rest := "/" + strings.TrimPrefix(path, candidate)
			c.Params = append(c.Params[:0], gin.Param{Key: "guid", Value: ct.GUID}, gin.Param{Key: "path", Value: rest})
			c.Request.URL.Path = "/content/" + ct.GUID + rest
			c.Request.URL.RawPath = ""
			s.serveContent(c)
			return
		}
		if !errors.Is(err, errNotFound) {
			c.Error(httpx.Internal(err))
			return
		}
		i := strings.LastIndex(strings.TrimSuffix(candidate, "/"), "/")
		candidate = candidate[:i+1]
	}
	c.Error(httpx.NotFound("no page at %s", path))
}
