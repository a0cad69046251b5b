package connect

// Connect's web pages: the dashboard listing content at /connect/ and each
// content item's page at /connect/apps/{guid}/ with its settings,
// processes and logs. They are server-rendered in the suite's layout like
// Package Manager's pages; forms post with the session's CSRF token and
// are checked by the same functions the Server API uses, so a setting
// refused by the API is refused here too.

import (
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/ui"
)

//go:embed templates/*.html
var uiTemplateFS embed.FS

var uiTemplates = template.Must(template.New("connect").Funcs(template.FuncMap{
	"when": uiTime,
	// noticeFor is the page's notice when it is about section.
	"noticeFor": func(n uiNotice, section string) *uiNotice {
		if n.Section != section {
			return nil
		}
		return &n
	},
}).ParseFS(uiTemplateFS, "templates/*.html"))

// uiTime formats a time the way the suite's other pages do.
func uiTime(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format("2006-01-02 15:04 UTC")
	case *time.Time:
		if v == nil {
			return ""
		}
		return uiTime(*v)
	}
	return ""
}

// dashboardPath is where Posit Connect users find their content; its
// /connect/#/apps/{guid} links (contentJSON's dashboard_url) are sent on
// to appPath by a line of script, as fragments never reach the server.
const dashboardPath = "/connect/"

func appPath(guid string) string { return dashboardPath + "apps/" + guid + "/" }

// uiRoutes adds the web pages. Every page needs a signed-in user (browsers
// are sent to sign in); what each may see or change is checked per item
// with the API's rules (s.viewable, s.visible).
func (s *Server) uiRoutes() {
	g := s.HTTP.Engine().Group("/connect", s.Auth.Require(auth.RoleViewer), uiNoStore)
	g.GET("/", s.uiDashboard)
	g.GET("/apps/:guid/", s.uiAppTab(tabApp))
	g.GET("/apps/:guid/settings", s.uiAppTab(tabSettings))
	g.GET("/apps/:guid/processes", s.uiAppTab(tabProcesses))
	g.GET("/apps/:guid/logs", s.uiAppTab(tabLogs))
	g.GET("/apps/:guid/jobs/:key", s.uiJobPage)
	g.GET("/apps/:guid/tasks/:id", s.uiTaskOutput)

	g.POST("/apps/:guid/settings/access", s.uiSetAccess)
	g.POST("/apps/:guid/settings/permissions", s.uiAddPermission)
	g.POST("/apps/:guid/settings/permissions/:id/delete", s.uiDeletePermission)
	g.POST("/apps/:guid/settings/runtime", s.uiSetRuntime)
	g.POST("/apps/:guid/settings/environment", s.uiSetEnv)
	g.POST("/apps/:guid/settings/environment/delete", s.uiDeleteEnv)
	g.POST("/apps/:guid/settings/vanity", s.uiSetVanity)
	g.POST("/apps/:guid/settings/vanity/delete", s.uiDeleteVanity)
	g.POST("/apps/:guid/jobs/:key/stop", s.uiStopJob)
	g.POST("/apps/:guid/bundles/:id/deploy", s.uiDeployBundle)
}

// uiNoStore keeps pages that show settings and logs out of caches.
func uiNoStore(c *gin.Context) { c.Header("Cache-Control", "no-store") }

// render executes the named template into the suite layout.
func (s *Server) uiRender(c *gin.Context, status int, title, name string, data any) {
	body, err := ui.Fragment(uiTemplates.Lookup(name), data)
	if err != nil {
		c.Error(httpx.Internal(fmt.Errorf("render %s: %w", name, err)))
		return
	}
	s.Render(c, status, title, body)
}

// App modes as people read them.
var modeLabels = map[string]string{
	"static":           "Static site",
	"python-fastapi":   "FastAPI",
	"python-api":       "Flask / WSGI API",
	"python-dash":      "Dash",
	"python-streamlit": "Streamlit",
	"python-bokeh":     "Bokeh",
	"python-shiny":     "Shiny for Python",
	"python-panel":     "Panel",
	"python-gradio":    "Gradio",
	"jupyter-voila":    "Voilà",
	"unknown":          "Not deployed",
}

func modeLabel(mode string) string {
	if l, ok := modeLabels[mode]; ok {
		return l
	}
	return mode
}

// isAPIMode is content a browser should not be shown in a frame: an API
// answers JSON, so the page links to it (and to its docs) instead.
func isAPIMode(mode string) bool {
	return mode == "python-fastapi" || mode == "python-api"
}

// Access types as the settings page names them, in the order offered.
var accessTypes = []struct{ Value, Label string }{
	{"all", "Anyone, no sign-in required"},
	{"logged_in", "All signed-in users"},
	{"acl", "Specific users or groups"},
}

func accessLabel(t string) string {
	switch t {
	case "all":
		return "Anyone"
	case "logged_in":
		return "All users"
	case "acl":
		return "Specific users"
	}
	return t
}

// ownerNames maps user ids to usernames, for showing owners and
// principals.
func (s *Server) ownerNames(c *gin.Context) (map[string]string, error) {
	users, err := s.Accounts.ListUsers(c.Request.Context())
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(users))
	for _, u := range users {
		names[u.ID] = u.Username
	}
	return names, nil
}

// lastDeploys is when each content item's newest deploy succeeded.
func (s *Server) lastDeploys(c *gin.Context) (map[string]time.Time, error) {
	rows, err := s.st.db.QueryContext(c.Request.Context(), `SELECT content_guid, MAX(finished_at) FROM tasks
		WHERE kind = 'deploy' AND status = ? AND content_guid IS NOT NULL AND finished_at IS NOT NULL GROUP BY content_guid`, taskSucceeded)
	if err != nil {
		return nil, fmt.Errorf("last deploys: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var guid string
		var at int64
		if err := rows.Scan(&guid, &at); err != nil {
			return nil, err
		}
		out[guid] = fromMS(at)
	}
	return out, rows.Err()
}

// ---- Dashboard ----

type dashRow struct {
	GUID, Title, Name, Mode, Owner, Access, Path string
	Deployed                                     time.Time
}

// uiDashboard lists the content the caller may see (admins: all), newest
// deploy first, narrowed by ?q= to items whose name or title contains it.
func (s *Server) uiDashboard(c *gin.Context) {
	u, _ := auth.CurrentUser(c)
	ctx := c.Request.Context()
	var list []Content
	var err error
	if isAdmin(u) {
		list, err = s.st.listContent(ctx, "", "")
	} else {
		list, _, err = s.st.listViewableContent(ctx, "", "", u)
	}
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	names, err := s.ownerNames(c)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	deployed, err := s.lastDeploys(c)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	query := strings.TrimSpace(c.Query("q"))
	q := strings.ToLower(query)
	rows := []dashRow{}
	for _, ct := range list {
		if q != "" && !strings.Contains(strings.ToLower(ct.Name), q) && !strings.Contains(strings.ToLower(ct.Title), q) {
			continue
		}
		r := dashRow{GUID: ct.GUID, Title: ct.Title, Name: ct.Name, Mode: modeLabel(ct.AppMode),
			Owner: names[ct.OwnerID], Access: accessLabel(ct.AccessType), Path: appPath(ct.GUID)}
		if ct.ActiveBundleID != 0 {
			r.Deployed = deployed[ct.GUID]
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Deployed.After(rows[j].Deployed) })
	s.uiRender(c, http.StatusOK, "Content", "dashboard", map[string]any{
		"Rows": rows, "Query": query, "Total": len(list), "Publisher": canPublish(u), "URL": s.URL(),
	})
}

// ---- helpers shared by the content pages ----

// formInt reads an optional whole-number form field: empty is the server's
// default (nil).
func formInt(c *gin.Context, field string) (optional[int64], error) {
	v := strings.TrimSpace(c.PostForm(field))
	if v == "" {
		return optional[int64]{set: true}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return optional[int64]{}, fmt.Errorf("%s must be a whole number, or empty for the server's default", field)
	}
	return optional[int64]{set: true, v: &n}, nil
}

func formFloat(c *gin.Context, field string) (optional[float64], error) {
	v := strings.TrimSpace(c.PostForm(field))
	if v == "" {
		return optional[float64]{set: true}, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return optional[float64]{}, fmt.Errorf("%s must be a number, or empty for the server's default", field)
	}
	return optional[float64]{set: true, v: &f}, nil
}
