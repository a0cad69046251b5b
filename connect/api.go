package connect

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// ServerVersion is the Posit Connect version /__api__/server_settings
// reports; clients turn features on by it. 2025.09.0 is chosen because:
//   - rsconnect-python (≥1.29.1) deploys as a draft, verifies the draft at
//     /content/{guid}/_bundle{id}/ and only then activates it from
//     2025.06.0 on, so a bundle that does not start never replaces the
//     running one (we implement drafts);
//   - posit-sdk's newest gate (bundles.active) is 2025.02.0;
//   - it stays at or below 2025.11.0, above which rsconnect sends every
//     upload from a git checkout as multipart with git metadata (we accept
//     multipart anyway, for --metadata).
const ServerVersion = "2025.09.0"

// Connect's API error codes, as clients read them from {"code": …}.
const (
	codeInternal     = 1
	codeBadRequest   = 3
	codeNotFound     = 4
	codeForbidden    = 6
	codeConflict     = 8
	codeInvalidLogin = 30 // rsconnect reports it as "The specified API key is not valid."
)

func apiError(status, code int, format string, args ...any) *httpx.Error {
	e := httpx.Errorf(status, format, args...)
	e.Code = code
	return e
}

func notFound(what string) *httpx.Error {
	return apiError(http.StatusNotFound, codeNotFound, "%s not found", what)
}

func badRequest(format string, args ...any) *httpx.Error {
	return apiError(http.StatusBadRequest, codeBadRequest, format, args...)
}

func isAdmin(u auth.User) bool    { return u.Role == auth.RoleAdmin }
func canPublish(u auth.User) bool { return u.Role == auth.RoleAdmin || u.Role == auth.RolePublisher }

// routes adds the Connect Server API and content serving.
func (s *Server) routes() {
	e := s.HTTP.Engine()
	// Content at vanity paths: whatever no route claims.
	e.NoRoute(s.serveVanity)
	// Bootstrap has no user yet: its JWT is its credential.
	e.POST("/__api__/v1/experimental/bootstrap", s.bootstrap)
	api := e.Group("/__api__", s.requireAPIUser)
	api.GET("/server_settings", s.serverSettings)
	api.GET("/v1/server_settings/python", s.pythonSettings)
	api.GET("/v1/user", s.getMe)
	api.GET("/v1/users/:guid", s.getUser)
	api.GET("/v1/users", s.listUsers)

	api.GET("/v1/groups", s.listGroups)
	api.POST("/v1/groups", s.createGroup)
	api.GET("/v1/groups/:guid", s.getGroup)
	api.DELETE("/v1/groups/:guid", s.deleteGroup)
	api.GET("/v1/groups/:guid/members", s.listGroupMembers)
	api.POST("/v1/groups/:guid/members", s.addGroupMember)
	api.DELETE("/v1/groups/:guid/members/:user_guid", s.removeGroupMember)

	api.GET("/v1/content", s.listContent)
	api.POST("/v1/content", s.createContent)
	api.GET("/v1/content/:guid", s.getContent)
	api.PATCH("/v1/content/:guid", s.patchContent)
	api.DELETE("/v1/content/:guid", s.deleteContent)

	api.POST("/v1/content/:guid/bundles", s.uploadBundle)
	api.GET("/v1/content/:guid/bundles", s.listBundles)
	api.GET("/v1/content/:guid/bundles/:id", s.getBundle)
	api.DELETE("/v1/content/:guid/bundles/:id", s.deleteBundle)
	api.GET("/v1/content/:guid/bundles/:id/download", s.downloadBundle)

	api.POST("/v1/content/:guid/deploy", s.deploy)

	api.GET("/v1/content/:guid/environment", s.getEnvironment)
	api.PATCH("/v1/content/:guid/environment", s.patchEnvironment)
	api.PUT("/v1/content/:guid/environment", s.putEnvironment)

	api.GET("/v1/content/:guid/permissions", s.listPermissions)
	api.POST("/v1/content/:guid/permissions", s.createPermission)
	api.GET("/v1/content/:guid/permissions/:id", s.getPermission)
	api.PUT("/v1/content/:guid/permissions/:id", s.updatePermission)
	api.PATCH("/v1/content/:guid/permissions/:id", s.updatePermission)
	api.DELETE("/v1/content/:guid/permissions/:id", s.deletePermission)

	api.GET("/v1/tags", s.listTags)
	api.POST("/v1/tags", s.createTag)
	api.GET("/v1/tags/:id", s.getTag)
	api.PATCH("/v1/tags/:id", s.patchTag)
	api.DELETE("/v1/tags/:id", s.deleteTag)
	api.GET("/v1/tags/:id/content", s.tagContent)
	api.GET("/v1/content/:guid/tags", s.listContentTags)
	api.POST("/v1/content/:guid/tags", s.addContentTag)
	api.DELETE("/v1/content/:guid/tags/:id", s.removeContentTag)

	api.GET("/v1/content/:guid/vanity", s.getVanity)
	api.PUT("/v1/content/:guid/vanity", s.putVanity)
	api.DELETE("/v1/content/:guid/vanity", s.deleteVanity)
	api.GET("/v1/vanities", s.listVanities)
	api.GET("/v1/tasks/:id", s.getTask)
	s.sdkRoutes(api)

	api.GET("/v1/content/:guid/jobs", s.listJobs)
	api.GET("/v1/content/:guid/jobs/:key", s.getJob)
	api.DELETE("/v1/content/:guid/jobs/:key", s.killJob)
	api.GET("/v1/content/:guid/jobs/:key/log", s.getJobLog)
	api.GET("/v1/content/:guid/jobs/:key/download", s.downloadJobLog)

	// serveContent decides who may see each item (its permissions and
	// access type), so the routes do not require a sign-in themselves.
	e.Any("/content/:guid", s.serveContent)
	e.Any("/content/:guid/*path", s.serveContent)
	// Nearly all of it is an app's traffic, which the fast path serves.
	s.HTTP.HandleFast("/content/", "/content/:guid/*path", s.serveContentFast)
	s.uiRoutes()
}

// requireAPIUser refuses anonymous API calls with Connect's 401 shape, so
// rsconnect says the key is invalid rather than failing on the body.
func (s *Server) requireAPIUser(c *gin.Context) {
	if _, ok := auth.CurrentUser(c); ok {
		return
	}
	msg := "Invalid login."
	if c.GetHeader("Authorization") == "" {
		msg = "Invalid login: this API needs an API key (Authorization: Key <key>) or a signed-in session."
	}
	c.Error(apiError(http.StatusUnauthorized, codeInvalidLogin, "%s", msg))
	c.Abort()
}

func (s *Server) serverSettings(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{
		"version":  ServerVersion,
		"hostname": strings.TrimPrefix(strings.TrimPrefix(s.URL(), "http://"), "https://"),
		"build":    "atrium",
		"python":   gin.H{"enabled": true},
		"license":  gin.H{"allow-apis": true},
	})
}

// pythonSettings lists the interpreter environments are built with
// (rsconnect details reads it).
func (s *Server) pythonSettings(c *gin.Context) {
	installs := []gin.H{}
	if all, err := s.pythons(c.Request.Context()); err == nil {
		for _, py := range all {
			installs = append(installs, gin.H{"version": py.version, "cluster_name": "Local", "image_name": "Local"})
		}
	}
	c.JSON(http.StatusOK, gin.H{"installations": installs, "api_enabled": true})
}

// userJSON is Connect's user record.
func userJSON(id, username, name, email, role string, locked bool, created time.Time) gin.H {
	first, last, _ := strings.Cut(strings.TrimSpace(name), " ")
	if role == auth.RoleAdmin {
		role = "administrator" // Connect's name for it; posit-sdk compares against it
	}
	return gin.H{
		"guid":         id,
		"username":     username,
		"email":        email,
		"first_name":   first,
		"last_name":    strings.TrimSpace(last),
		"user_role":    role,
		"created_time": timeJSON(created),
		"updated_time": timeJSON(created),
		"active_time":  nil,
		"confirmed":    true,
		"locked":       locked,
	}
}

func timeJSON(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func (s *Server) getMe(c *gin.Context) {
	u, _ := auth.CurrentUser(c)
	created := time.Time{}
	if au, err := s.Accounts.User(c.Request.Context(), u.ID); err == nil {
		created = au.CreatedAt
	}
	c.JSON(http.StatusOK, userJSON(u.ID, u.Username, u.Name, u.Email, u.Role, u.Locked, created))
}

func (s *Server) getUser(c *gin.Context) {
	au, err := s.Accounts.User(c.Request.Context(), c.Param("guid"))
	if err != nil {
		c.Error(notFound("user"))
		return
	}
	c.JSON(http.StatusOK, userJSON(au.ID, au.Username, au.Name, au.Email, string(au.Role), au.Locked, au.CreatedAt))
}
