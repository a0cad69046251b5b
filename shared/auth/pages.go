package auth

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/ui"
)

// Register adds the sign-in routes under /__auth__/: login, callback,
// logout, me, keys and admin/users. They identify the caller and check
// CSRF tokens themselves, whether or not the product uses Middleware and
// CSRF globally.
func (a *Auth) Register(r *gin.Engine) {
	g := r.Group(PathPrefix, a.Middleware(), a.CSRF(), noStore)
	g.GET("/login", a.login)
	g.GET("/callback", a.callback)
	g.POST("/logout", a.logout)
	g.GET("/me", a.me)

	viewer, admin := a.Require(RoleViewer), a.Require(RoleAdmin)
	g.GET("/keys", viewer, a.keysPage)
	g.POST("/keys", viewer, browserOnly, a.createKey)
	g.POST("/keys/:id/revoke", viewer, browserOnly, a.revokeKey)
	g.GET("/admin/users", admin, a.usersPage)
	g.POST("/admin/users", admin, browserOnly, a.changeUsers)
}

// noStore keeps sign-in answers, new keys and user lists out of caches.
func noStore(c *gin.Context) { c.Header("Cache-Control", "no-store") }

// browserOnly refuses API keys on the pages that manage keys and users, so
// a leaked key cannot mint more keys or grant roles.
func browserOnly(c *gin.Context) {
	if sessionOf(c) == nil {
		c.Error(httpx.Errorf(http.StatusForbidden, "API keys cannot manage keys or users; sign in with a browser"))
		c.Abort()
	}
}

var badge = template.Must(template.New("badge").Parse(
	`{{if .User}}Signed in as <strong>{{.User.Username}}</strong> ({{.User.Role}}) · <a href="/__auth__/keys">API keys</a>` +
		`{{if .Admin}} · <a href="/__auth__/admin/users">Admin</a>{{end}}` +
		`{{if .CSRF}} · <form method="post" action="/__auth__/logout" class="inline">{{.CSRF}}<button type="submit" class="link">Sign out</button></form>{{end}}` +
		`{{else}}<a href="{{.Login}}">Sign in</a>{{end}}`))

// UserBadge says who is signed in, with links to their API keys, the user
// admin page (admins) and a sign-out button, or offers to sign in. Put it
// in ui.Page.User. It needs Middleware to have run.
func (a *Auth) UserBadge(c *gin.Context) template.HTML {
	data := map[string]any{"CSRF": CSRFField(c)}
	if u, ok := CurrentUser(c); ok {
		data["User"], data["Admin"] = u, u.Role == RoleAdmin
	} else {
		next := "/"
		if c.Request.Method == http.MethodGet {
			next = safeNext(c.Request.URL.RequestURI())
		}
		data["Login"] = LoginPath + "?next=" + url.QueryEscape(next)
	}
	h, err := ui.Fragment(badge, data)
	if err != nil {
		a.log.Error("render user badge", "err", err)
		return ""
	}
	return h
}

func (a *Auth) render(c *gin.Context, status int, title string, t *template.Template, data any) {
	body, err := ui.Fragment(t, data)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	ui.Render(c, status, ui.Page{Product: a.cfg.DisplayName, Title: title, Nav: a.cfg.Nav, User: a.UserBadge(c), Body: body})
}

func formatTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

var keysBody = template.Must(template.New("keys").Parse(`<h1>API keys</h1>
<p class="lead">A key lets scripts and tools act as you in {{.Product}}, until it expires or you revoke it.
Send it as <code>Authorization: Key &lt;key&gt;</code> or <code>Authorization: Bearer &lt;key&gt;</code>,
or as the password of the user <code>__token__</code>.</p>
{{with .New}}<h2>New key “{{.Name}}”</h2>
<pre>{{.Key}}</pre>
<p class="ok">Copy the key now: it is shown only this once, and Atrium keeps only a hash of it.</p>{{end}}
<h2>Your keys for {{.Product}}</h2>
{{if .Keys}}<table>
<tr><th>Name</th><th>Key</th><th>Created</th><th>Expires</th><th>Last used</th><th></th></tr>
{{range .Keys}}<tr><td>{{.Name}}{{if .Everywhere}} <span class="muted">(every product)</span>{{end}}</td><td><code>{{.Prefix}}…</code></td><td>{{.Created}}</td><td>{{or .Expires "never"}}</td><td>{{or .LastUsed "never"}}</td>
<td><form method="post" action="{{.Revoke}}" class="inline">{{$.CSRF}}<button type="submit">Revoke</button></form></td></tr>
{{end}}</table>{{else}}<p class="muted">You have no keys for {{.Product}}.</p>{{end}}
<h2>Create a key</h2>
<form method="post" action="/__auth__/keys">{{.CSRF}}
<p><label>Name <input name="name" required maxlength="100"></label></p>
<p><label>Expires after <input name="expires_days" type="number" min="1" max="3650"> days</label> <span class="muted">(leave empty for a key that does not expire)</span></p>
<p><button type="submit">Create key</button></p>
</form>`))

type keyRow struct {
	Name, Prefix, Created, Expires, LastUsed, Revoke string
	Everywhere                                       bool // valid for every product
}

// keysPage lists the caller's keys for this product; newKey, when set, is
// the secret of a key just created, shown once.
func (a *Auth) keysPage(c *gin.Context) {
	a.renderKeys(c, nil)
}

type newKey struct{ Name, Key string }

func (a *Auth) renderKeys(c *gin.Context, created *newKey) {
	u, _ := CurrentUser(c)
	keys, err := a.dir.ListAPIKeys(c.Request.Context(), u.ID)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	var rows []keyRow
	for _, k := range keys {
		// Keys without a product work everywhere, so they are listed (and
		// can be revoked) on every product's page.
		if k.Product != a.cfg.Product && k.Product != "" {
			continue
		}
		rows = append(rows, keyRow{
			Name: k.Name, Prefix: k.Prefix, Everywhere: k.Product == "", Created: formatTime(&k.CreatedAt),
			Expires: formatTime(k.ExpiresAt), LastUsed: formatTime(k.LastUsedAt),
			Revoke: KeysPath + "/" + url.PathEscape(k.ID) + "/revoke",
		})
	}
	a.render(c, http.StatusOK, "API keys", keysBody, map[string]any{
		"Product": a.cfg.DisplayName, "Keys": rows, "New": created, "CSRF": CSRFField(c),
	})
}

const (
	maxKeyName     = 100
	maxExpiresDays = 3650
)

func (a *Auth) createKey(c *gin.Context) {
	name := strings.TrimSpace(c.PostForm("name"))
	if name == "" || len(name) > maxKeyName {
		c.Error(httpx.BadRequest("the key needs a name of 1 to %d characters", maxKeyName))
		return
	}
	var expires *time.Time
	if days := strings.TrimSpace(c.PostForm("expires_days")); days != "" {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > maxExpiresDays {
			c.Error(httpx.BadRequest("expiry must be a whole number of days from 1 to %d, or empty for none", maxExpiresDays))
			return
		}
		t := a.now().Add(time.Duration(n) * 24 * time.Hour)
		expires = &t
	}
	u, _ := CurrentUser(c)
	key, k, err := a.dir.CreateAPIKey(c.Request.Context(), u.ID, name, a.cfg.Product, expires)
	if err != nil {
		c.Error(directoryError(err))
		return
	}
	a.log.Info("API key created", "user_id", u.ID, "key_id", k.ID)
	// Rendered in the response rather than redirected to, because the
	// secret must not travel in a URL or be stored anywhere.
	a.renderKeys(c, &newKey{Name: k.Name, Key: key})
}

func (a *Auth) revokeKey(c *gin.Context) {
	u, _ := CurrentUser(c)
	id := c.Param("id")
	if err := a.dir.RevokeAPIKey(c.Request.Context(), u.ID, id); err != nil {
		c.Error(directoryError(err))
		return
	}
	a.log.Info("API key revoked", "user_id", u.ID, "key_id", id)
	c.Redirect(http.StatusSeeOther, KeysPath)
}

// directoryError maps the documented directory errors to responses.
func directoryError(err error) error {
	var ie *InputError
	switch {
	case errors.As(err, &ie):
		return &httpx.Error{Status: http.StatusBadRequest, Msg: ie.Msg, Err: err}
	case errors.Is(err, ErrUnknownUser):
		return &httpx.Error{Status: http.StatusNotFound, Msg: "no such user", Err: err}
	case errors.Is(err, ErrUnknownKey):
		return &httpx.Error{Status: http.StatusNotFound, Msg: "no such API key", Err: err}
	}
	return httpx.Internal(err)
}

var usersBody = template.Must(template.New("users").Parse(`<h1>Users</h1>
{{with .Done}}<p class="ok">{{.}}</p>{{end}}
{{if .Mapped}}<p class="muted">Roles come from the groups at {{.Issuer}} and are set again at each sign-in; a change here lasts until then.</p>{{end}}
<table>
<tr><th>Username</th><th>Name</th><th>Email</th><th>Role</th><th>Status</th></tr>
{{range .Users}}<tr><td>{{.Username}}</td><td>{{.Name}}</td><td>{{.Email}}</td>
<td><form method="post" action="/__auth__/admin/users" class="inline">{{$.CSRF}}<input type="hidden" name="action" value="role"><input type="hidden" name="username" value="{{.Username}}">
<select name="role" aria-label="role of {{.Username}}">{{$role := .Role}}{{range $.Roles}}<option{{if eq . $role}} selected{{end}}>{{.}}</option>{{end}}</select> <button type="submit">Change</button></form></td>
<td>{{if .Locked}}locked{{else}}active{{end}}
<form method="post" action="/__auth__/admin/users" class="inline">{{$.CSRF}}<input type="hidden" name="username" value="{{.Username}}">
{{if .Locked}}<input type="hidden" name="action" value="unlock"><button type="submit">Unlock</button>{{else}}<input type="hidden" name="action" value="lock"><button type="submit">Lock</button>{{end}}</form></td></tr>
{{end}}</table>
{{if .Embedded}}<h2>Add a user</h2>
<form method="post" action="/__auth__/admin/users">{{.CSRF}}<input type="hidden" name="action" value="add">
<p><label>Username <input name="username" required maxlength="64" autocomplete="off"></label></p>
<p><label>Name <input name="name" maxlength="200"></label></p>
<p><label>Email <input name="email" type="email" maxlength="200"></label></p>
<p><label>Password <input name="password" type="password" required autocomplete="new-password"></label></p>
<p><label>Role <select name="role">{{range .Roles}}<option>{{.}}</option>{{end}}</select></label></p>
<p><button type="submit">Add user</button></p>
</form>{{else}}<p class="muted">People sign in through {{.Issuer}}; they appear here after their first sign-in.</p>{{end}}`))

// doneMessages are the confirmations after a change. The redirect names one
// by key, so nothing from the query string is echoed into the page.
var doneMessages = map[string]string{
	"add": "User added.", "role": "Role changed.", "lock": "User locked; their sessions and API keys stopped working.", "unlock": "User unlocked.",
}

var roles = []string{RoleViewer, RolePublisher, RoleAdmin}

func (a *Auth) usersPage(c *gin.Context) {
	users, err := a.dir.ListUsers(c.Request.Context())
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	a.render(c, http.StatusOK, "Users", usersBody, map[string]any{
		"Users": users, "Roles": roles, "CSRF": CSRFField(c), "Done": doneMessages[c.Query("done")],
		"Embedded": a.cfg.Embedded, "Issuer": a.cfg.Issuer, "Mapped": a.mapsGroups,
	})
}

// changeUsers applies one change from the users page. Input is checked
// before anything is changed.
func (a *Auth) changeUsers(c *gin.Context) {
	ctx := c.Request.Context()
	me, _ := CurrentUser(c)
	action := c.PostForm("action")
	username := strings.TrimSpace(c.PostForm("username"))
	role := c.PostForm("role")
	if username == "" {
		c.Error(httpx.BadRequest("a username is required"))
		return
	}
	var err error
	switch action {
	case "role":
		if !slices.Contains(roles, role) {
			c.Error(httpx.BadRequest("role %q is not one of viewer, publisher, admin", truncate(role, 32)))
			return
		}
		if username == me.Username && role != RoleAdmin {
			c.Error(httpx.BadRequest("you cannot take away your own admin role; ask another admin"))
			return
		}
		err = a.dir.SetRole(ctx, username, role)
	case "lock", "unlock":
		if username == me.Username {
			c.Error(httpx.BadRequest("you cannot lock or unlock your own account"))
			return
		}
		err = a.dir.SetLocked(ctx, username, action == "lock")
	case "add":
		if !a.cfg.Embedded {
			c.Error(httpx.BadRequest("users sign in through %s; add them there", a.cfg.Issuer))
			return
		}
		if !slices.Contains(roles, role) {
			c.Error(httpx.BadRequest("role %q is not one of viewer, publisher, admin", truncate(role, 32)))
			return
		}
		if c.PostForm("password") == "" {
			c.Error(httpx.BadRequest("a password is required"))
			return
		}
		_, err = a.dir.AddUser(ctx, username, strings.TrimSpace(c.PostForm("name")), strings.TrimSpace(c.PostForm("email")), c.PostForm("password"), role)
	default:
		c.Error(httpx.BadRequest("unknown action %q", truncate(action, 32)))
		return
	}
	if err != nil {
		if errors.Is(err, ErrUnknownUser) {
			c.Error(&httpx.Error{Status: http.StatusNotFound, Msg: "no user named " + strconv.Quote(truncate(username, 64)), Err: err})
			return
		}
		c.Error(directoryError(err))
		return
	}
	a.log.Info("user changed", "by", me.Username, "action", action, "username", username, "role", role)
	c.Redirect(http.StatusSeeOther, UsersPath+"?done="+action)
}
