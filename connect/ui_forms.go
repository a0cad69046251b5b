package connect

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/accounts"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// The content page's forms. Each checks all of its input with the
// functions the Server API uses before it changes anything; a refusal
// shows the page again with the message next to the form and the stored
// values, and a change redirects (303) to the page with a confirmation.

// uiFail shows tab again with the error next to section's form.
func (s *Server) uiFail(c *gin.Context, tab, section string, e *httpx.Error) {
	status := e.Status
	if status < 400 {
		status = http.StatusBadRequest
	}
	if e.Err != nil {
		s.Log.Error("web form", "section", section, "err", e.Err)
	}
	s.uiApp(c, tab, uiNotice{Section: section, Error: e.Msg}, status)
}

// uiDone redirects to tab with the confirmation named by done.
func (s *Server) uiDone(c *gin.Context, guid, tab, done string) {
	target := appPath(guid)
	if tab != tabApp {
		target += tab
	}
	target += "?done=" + done
	if n, ok := uiDoneMessages[done]; ok {
		target += "#" + n.Section
	}
	c.Redirect(http.StatusSeeOther, target)
}

// saveContent writes ct after a settings form changed it.
func (s *Server) saveContent(c *gin.Context, ct Content, section string) bool {
	ct, err := s.st.updateContent(c.Request.Context(), ct)
	if errors.Is(err, errNameTaken) {
		s.uiFail(c, tabSettings, section, apiError(http.StatusConflict, codeConflict, "the owner already has content named %q", ct.Name))
		return false
	} else if err != nil {
		s.uiFail(c, tabSettings, section, httpx.Internal(err))
		return false
	}
	s.rt.reschedule(ct)
	return true
}

// uiSetAccess sets who may see the content: anyone, signed-in users, or
// those with a permission (contentPatch's rule).
func (s *Server) uiSetAccess(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	v := c.PostForm("access_type")
	if err := (contentPatch{AccessType: &v}).apply(&ct); err != nil {
		s.uiFail(c, tabSettings, "access", err)
		return
	}
	if s.saveContent(c, ct, "access") {
		s.uiDone(c, ct.GUID, tabSettings, "access")
	}
}

// uiAddPermission gives a user or group (by name) the viewer or owner
// role; one that has a permission already gets the new role.
func (s *Server) uiAddPermission(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	typ, role := c.PostForm("principal_type"), c.PostForm("role")
	name := strings.TrimSpace(c.PostForm("principal"))
	fail := func(e *httpx.Error) { s.uiFail(c, tabSettings, "permissions", e) }
	var guid string
	switch typ {
	case principalUser:
		au, err := s.Accounts.UserByUsername(ctx, name)
		if errors.Is(err, accounts.ErrNotFound) || name == "" {
			fail(badRequest("there is no user named %q", name))
			return
		} else if err != nil {
			fail(httpx.Internal(err))
			return
		}
		guid = au.ID
	case principalGroup:
		groups, err := s.st.listGroups(ctx)
		if err != nil {
			fail(httpx.Internal(err))
			return
		}
		for _, g := range groups {
			if g.Name == name {
				guid = g.GUID
			}
		}
		if guid == "" {
			fail(badRequest("there is no group named %q", name))
			return
		}
	default:
		fail(badRequest("principal_type must be user or group"))
		return
	}
	p := Permission{ContentGUID: ct.GUID}
	if err := s.applyPermission(c, permissionBody{PrincipalGUID: &guid, PrincipalType: &typ, Role: &role}, &p); err != nil {
		fail(err)
		return
	}
	_, err := s.st.createPermission(ctx, p)
	if errors.Is(err, errConflict) {
		err = s.changeRole(ctx, p)
	}
	if err != nil {
		fail(httpx.Internal(err))
		return
	}
	s.uiDone(c, ct.GUID, tabSettings, "permission")
}

// changeRole gives the principal of p, who has a permission on the
// content already, p's role.
func (s *Server) changeRole(ctx context.Context, p Permission) error {
	perms, err := s.st.listPermissions(ctx, p.ContentGUID)
	if err != nil {
		return err
	}
	for _, old := range perms {
		if old.PrincipalType == p.PrincipalType && old.PrincipalGUID == p.PrincipalGUID {
			old.Role = p.Role
			return s.st.updatePermission(ctx, old)
		}
	}
	return errNotFound
}

func (s *Server) uiDeletePermission(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	id, ok := parseBundleID(c.Param("id"))
	if !ok {
		s.uiFail(c, tabSettings, "permissions", notFound("permission"))
		return
	}
	if err := s.st.deletePermission(c.Request.Context(), ct.GUID, id); errors.Is(err, errNotFound) {
		s.uiFail(c, tabSettings, "permissions", notFound("permission"))
		return
	} else if err != nil {
		s.uiFail(c, tabSettings, "permissions", httpx.Internal(err))
		return
	}
	s.uiDone(c, ct.GUID, tabSettings, "unpermission")
}

// uiSetRuntime sets the scheduler settings; an empty field takes the
// server's default. contentPatch.applySched checks the ranges and that
// min is not above max, as for PATCH /v1/content.
func (s *Server) uiSetRuntime(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	var p contentPatch
	var errs []error
	read := func(dst *optional[int64], field string) {
		v, err := formInt(c, field)
		*dst = v
		errs = append(errs, err)
	}
	read(&p.MinProcesses, "min_processes")
	read(&p.MaxProcesses, "max_processes")
	read(&p.MaxConnsPerProcess, "max_conns_per_process")
	read(&p.IdleTimeout, "idle_timeout")
	read(&p.InitTimeout, "init_timeout")
	var err error
	p.LoadFactor, err = formFloat(c, "load_factor")
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil {
			s.uiFail(c, tabSettings, "runtime", badRequest("%s", err.Error()))
			return
		}
	}
	if err := p.applySched(&ct.Sched); err != nil {
		s.uiFail(c, tabSettings, "runtime", err)
		return
	}
	if s.saveContent(c, ct, "runtime") {
		s.uiDone(c, ct.GUID, tabSettings, "runtime")
	}
}

// checkEnvVar is the environment API's rule for a variable (see
// writeEnvironment).
func checkEnvVar(name string, value *string) *httpx.Error {
	if !envNamePattern.MatchString(name) {
		return badRequest("environment variable name %q must be letters, digits and '_', not starting with a digit", name)
	}
	if value != nil && len(*value) > maxEnvValue {
		return badRequest("the value of %s is longer than %d bytes", name, maxEnvValue)
	}
	return nil
}

// uiSetEnv adds a variable or replaces its value. Values are write-only:
// the page lists names.
func (s *Server) uiSetEnv(c *gin.Context) {
	s.writeEnvVar(c, true)
}

func (s *Server) uiDeleteEnv(c *gin.Context) {
	s.writeEnvVar(c, false)
}

func (s *Server) writeEnvVar(c *gin.Context, set bool) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	name := strings.TrimSpace(c.PostForm("name"))
	var value *string
	if set {
		v := c.PostForm("value")
		value = &v
	}
	if err := checkEnvVar(name, value); err != nil {
		s.uiFail(c, tabSettings, "environment", err)
		return
	}
	if err := s.st.setEnvVars(c.Request.Context(), ct.GUID, map[string]*string{name: value}, false); err != nil {
		s.uiFail(c, tabSettings, "environment", httpx.Internal(err))
		return
	}
	s.rt.restart(ct.GUID)
	done := "env"
	if !set {
		done = "unenv"
	}
	s.uiDone(c, ct.GUID, tabSettings, done)
}

// uiSetVanity gives the content a vanity path (normalizeVanity's rules);
// admins may take a path from other content.
func (s *Server) uiSetVanity(c *gin.Context) {
	ct, u, ok := s.visible(c)
	if !ok {
		return
	}
	path, herr := normalizeVanity(c.PostForm("path"))
	if herr != nil {
		s.uiFail(c, tabSettings, "vanity", herr)
		return
	}
	force := c.PostForm("force") != ""
	if force && !isAdmin(u) {
		s.uiFail(c, tabSettings, "vanity", apiError(http.StatusForbidden, codeForbidden, "only admins may take a vanity URL from other content"))
		return
	}
	_, err := s.st.setVanity(c.Request.Context(), ct.GUID, path, force)
	if errors.Is(err, errConflict) {
		s.uiFail(c, tabSettings, "vanity", apiError(http.StatusConflict, codeConflict, "vanity path %s is in use by (or overlaps) another content item's", path))
		return
	} else if err != nil {
		s.uiFail(c, tabSettings, "vanity", httpx.Internal(err))
		return
	}
	s.uiDone(c, ct.GUID, tabSettings, "vanity")
}

func (s *Server) uiDeleteVanity(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	if err := s.st.deleteVanity(c.Request.Context(), ct.GUID); errors.Is(err, errNotFound) {
		s.uiFail(c, tabSettings, "vanity", notFound("vanity URL"))
		return
	} else if err != nil {
		s.uiFail(c, tabSettings, "vanity", httpx.Internal(err))
		return
	}
	s.uiDone(c, ct.GUID, tabSettings, "unvanity")
}

// uiStopJob stops a running process, as DELETE …/jobs/{key} does.
func (s *Server) uiStopJob(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	fail := func(e *httpx.Error) { s.uiFail(c, tabProcesses, "processes", e) }
	j, err := s.st.job(ctx, ct.GUID, c.Param("key"))
	switch {
	case errors.Is(err, errNotFound):
		fail(notFound("job"))
		return
	case err != nil:
		fail(httpx.Internal(err))
		return
	case j.Status != jobActive:
		fail(apiError(http.StatusConflict, codeConflict, "process %s has already finished", j.Key))
		return
	case j.Hostname != s.hostname:
		fail(apiError(http.StatusConflict, codeConflict, "process %s runs on %s; stop it there", j.Key, j.Hostname))
		return
	}
	if !s.rt.kill(ct.GUID, j.Key) {
		// Not ours any more (the server restarted): just record it.
		if err := s.st.finishJob(ctx, j.Key, nil); err != nil {
			fail(httpx.Internal(err))
			return
		}
	}
	s.uiDone(c, ct.GUID, tabProcesses, "stop")
}

// uiDeployBundle deploys one of the content's bundles (a redeploy, or a
// rollback to an older one) and shows its log as it runs.
func (s *Server) uiDeployBundle(c *gin.Context) {
	ct, u, ok := s.visible(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	fail := func(e *httpx.Error) { s.uiFail(c, tabLogs, "deploy", e) }
	id, ok := parseBundleID(c.Param("id"))
	if !ok {
		fail(notFound("bundle"))
		return
	}
	b, err := s.st.bundle(ctx, ct.GUID, id)
	if errors.Is(err, errNotFound) {
		fail(notFound("bundle"))
		return
	} else if err != nil {
		fail(httpx.Internal(err))
		return
	}
	t, err := s.tasks.start(ctx, Task{ContentGUID: ct.GUID, Kind: "deploy", UserID: u.ID}, func(ctx context.Context, log *taskLog) error {
		return s.runDeploy(ctx, ct.GUID, b, true, log)
	})
	if err != nil {
		fail(httpx.Internal(err))
		return
	}
	c.Redirect(http.StatusSeeOther, appPath(ct.GUID)+tabLogs+"?task="+t.ID+"#log")
}
