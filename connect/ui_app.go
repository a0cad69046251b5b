package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/httpx"
)

// The content page's tabs. Viewers see only the app; those who may manage
// the item see the others too.
const (
	tabApp       = "app"
	tabSettings  = "settings"
	tabProcesses = "processes"
	tabLogs      = "logs"
)

// uiNotice is a message shown next to the form it is about: an error that
// changed nothing, or the confirmation of a change.
type uiNotice struct {
	Section string // access, permissions, runtime, environment, vanity, processes, deploy
	Error   string
	Done    string
}

// uiDoneMessages are the confirmations after a change; the redirect names
// one by key so nothing from the query string is echoed into the page.
var uiDoneMessages = map[string]uiNotice{
	"access":       {Section: "access", Done: "Access changed."},
	"permission":   {Section: "permissions", Done: "Permission saved."},
	"unpermission": {Section: "permissions", Done: "Permission removed."},
	"runtime":      {Section: "runtime", Done: "Runtime settings saved; running processes follow them now."},
	"env":          {Section: "environment", Done: "Variable saved. Processes started from now on see it."},
	"unenv":        {Section: "environment", Done: "Variable removed."},
	"vanity":       {Section: "vanity", Done: "Vanity URL saved."},
	"unvanity":     {Section: "vanity", Done: "Vanity URL removed."},
	"stop":         {Section: "processes", Done: "The process was told to stop; the scheduler starts another when the content still needs one."},
}

// appView is what the content page shows.
type appView struct {
	GUID, Name, Title, Description, Mode, ModeLabel, Owner string
	AccessType, AccessLabel                                string
	URL, VanityURL, VanityPath, Path                       string
	Deployed, API, CanEdit, Admin                          bool
	Tab                                                    string
	// The active bundle's Python environment, for those who manage the
	// item (the packages API's data): the interpreter's version and what
	// is installed, by normalized name.
	PythonVersion string
	Packages      []bundlePackage
	Notice        uiNotice
	CSRF          template.HTML
	// Elapsed is how long the shown task has run, for its progress line.
	Elapsed int64

	// What the refused form held, shown again so it can be corrected (a
	// variable's value is never sent back).
	FormPrincipal, FormPrincipalType, FormRole, FormEnvName, FormVanity string

	// Settings
	AccessTypes []struct{ Value, Label string }
	Perms       []permRow
	Usernames   []string
	Groups      []string
	Sched       []schedRow
	Env         []string

	// Processes
	Procs []procRow
	Jobs  []jobRow

	// Logs
	Bundles []bundleRow
	Tasks   []taskRow
	Task    *taskRow
	Lines   []string
}

type permRow struct {
	ID               int64
	Type, Name, Role string
}

// schedRow is one runtime setting: the item's own value ("" for the
// server's default) and that default.
type schedRow struct {
	Field, Label, Help, Value, Default, Step, Min, Max string
}

type procRow struct {
	Key, PID, Started, Log string
	BundleID               int64
	InFlight               int
	Stopping               bool
}

type jobRow struct {
	Key, PID, Status, Start, End, Exit, Tag, Log, RunAs string
	BundleID                                            int64
	Active                                              bool
}

type bundleRow struct {
	ID      int64
	Created string
	Size    string
	Mode    string
	Active  bool
}

type taskRow struct {
	ID, Kind, Status, User, Created, Finished, Error, Link string
	Running                                                bool
}

// uiAppTab serves one tab of a content item's page.
func (s *Server) uiAppTab(tab string) gin.HandlerFunc {
	return func(c *gin.Context) {
		notice := uiDoneMessages[c.Query("done")]
		s.uiApp(c, tab, notice, http.StatusOK)
	}
}

// uiApp renders the page: viewers get the app; a tab that needs the
// manage right answers like the API (403 for viewers, 404 for others).
func (s *Server) uiApp(c *gin.Context, tab string, notice uiNotice, status int) {
	ct, u, ok := s.viewable(c)
	if !ok {
		return
	}
	ctx := c.Request.Context()
	a, err := s.st.access(ctx, ct, u)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	canEdit := a >= accessEdit
	if tab != tabApp && !canEdit {
		c.Error(apiError(http.StatusForbidden, codeForbidden, "you may view this content but not manage it; ask its owner for the owner (collaborator) permission"))
		return
	}
	names, err := s.ownerNames(c)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	v := appView{
		GUID: ct.GUID, Name: ct.Name, Title: ct.Title, Description: ct.Description,
		Mode: ct.AppMode, ModeLabel: modeLabel(ct.AppMode), Owner: names[ct.OwnerID],
		AccessType: ct.AccessType, AccessLabel: accessLabel(ct.AccessType),
		URL: s.URL() + contentPrefix(ct.GUID, 0), Path: appPath(ct.GUID),
		Deployed: ct.ActiveBundleID != 0, API: isAPIMode(ct.AppMode), CanEdit: canEdit, Admin: isAdmin(u),
		Tab: tab, Notice: notice, CSRF: auth.CSRFField(c), AccessTypes: accessTypes,
	}
	if vn, err := s.st.vanity(ctx, ct.GUID); err == nil {
		v.VanityPath, v.VanityURL = vn.Path, s.URL()+vn.Path
	} else if !errors.Is(err, errNotFound) {
		c.Error(httpx.Internal(err))
		return
	}
	v.FormVanity = v.VanityPath
	switch tab {
	case tabApp:
		if canEdit && ct.ActiveBundleID != 0 {
			v.Packages, err = s.st.bundlePackages(ctx, ct.GUID, ct.ActiveBundleID)
			if len(v.Packages) > 0 {
				v.PythonVersion = v.Packages[0].LanguageVersion
			}
		}
	case tabSettings:
		err = s.settingsView(ctx, ct, names, &v)
		if err == nil && notice.Error != "" && c.Request.Method == http.MethodPost {
			s.keepPosted(c, &v)
		}
	case tabProcesses:
		err = s.processesView(ctx, ct, &v)
	case tabLogs:
		err = s.logsView(ctx, ct, names, c.Query("task"), &v)
	}
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	title := ct.Title
	if title == "" {
		title = ct.Name
	}
	s.uiRender(c, status, title, "app", v)
}

// keepPosted puts what the refused form held back into it.
func (s *Server) keepPosted(c *gin.Context, v *appView) {
	switch v.Notice.Section {
	case "permissions":
		v.FormPrincipal, v.FormPrincipalType, v.FormRole = c.PostForm("principal"), c.PostForm("principal_type"), c.PostForm("role")
	case "environment":
		v.FormEnvName = c.PostForm("name")
	case "vanity":
		v.FormVanity = c.PostForm("path")
	case "runtime":
		for i := range v.Sched {
			v.Sched[i].Value = c.PostForm(v.Sched[i].Field)
		}
	}
}

func (s *Server) settingsView(ctx context.Context, ct Content, names map[string]string, v *appView) error {
	perms, err := s.st.listPermissions(ctx, ct.GUID)
	if err != nil {
		return err
	}
	groups, err := s.st.listGroups(ctx)
	if err != nil {
		return err
	}
	groupNames := map[string]string{}
	for _, g := range groups {
		groupNames[g.GUID] = g.Name
		v.Groups = append(v.Groups, g.Name)
	}
	for _, p := range perms {
		name := names[p.PrincipalGUID]
		if p.PrincipalType == principalGroup {
			name = groupNames[p.PrincipalGUID]
		}
		if name == "" {
			name = p.PrincipalGUID
		}
		v.Perms = append(v.Perms, permRow{ID: p.ID, Type: p.PrincipalType, Name: name, Role: p.Role})
	}
	for _, n := range names {
		v.Usernames = append(v.Usernames, n)
	}
	sort.Strings(v.Usernames)
	v.Sched = s.schedRows(ct.Sched)
	v.Env, err = s.st.envVarNames(ctx, ct.GUID)
	return err
}

// schedRows lists the runtime settings with the server's defaults, which
// a field left empty takes (scheduleFor's rule).
func (s *Server) schedRows(sc Sched) []schedRow {
	d := s.Config.Connect
	i := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	f := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'g', -1, 64)
	}
	sec := func(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
	n := strconv.Itoa
	return []schedRow{
		{Field: "min_processes", Label: "Min processes", Help: "kept running even when nobody uses the content", Value: i(sc.MinProcesses), Default: n(d.MinProcesses), Step: "1", Min: "0", Max: n(maxProcessesLimit)},
		{Field: "max_processes", Label: "Max processes", Help: "the most processes started for this content", Value: i(sc.MaxProcesses), Default: n(d.MaxProcesses), Step: "1", Min: "1", Max: n(maxProcessesLimit)},
		{Field: "max_conns_per_process", Label: "Max connections per process", Help: "requests one process is given at once", Value: i(sc.MaxConnsPerProcess), Default: n(d.MaxConnsPerProcess), Step: "1", Min: "1", Max: n(maxConnsLimit)},
		{Field: "load_factor", Label: "Load factor", Help: "0–1: how full processes get before another starts", Value: f(sc.LoadFactor), Default: strconv.FormatFloat(d.LoadFactor, 'g', -1, 64), Step: "any", Min: "0", Max: "1"},
		{Field: "idle_timeout", Label: "Idle timeout (seconds)", Help: "an idle process above the minimum stops after this", Value: i(sc.IdleTimeout), Default: sec(d.ProcessIdleTimeout.D()), Step: "1", Min: "1", Max: n(maxTimeoutSeconds)},
		{Field: "init_timeout", Label: "Initial timeout (seconds)", Help: "how long a process may take to start", Value: i(sc.InitTimeout), Default: sec(d.InitTimeout.D()), Step: "1", Min: "1", Max: "3600"},
	}
}

func (s *Server) processesView(ctx context.Context, ct Content, v *appView) error {
	jobs, err := s.st.jobs(ctx, ct.GUID)
	if err != nil {
		return err
	}
	pids := map[string]int{}
	for _, j := range jobs {
		pids[j.Key] = j.PID
	}
	for _, p := range s.rt.processes(ct.GUID) {
		pid := ""
		if n := pids[p.Key]; n > 0 {
			pid = strconv.Itoa(n)
		}
		v.Procs = append(v.Procs, procRow{Key: p.Key, PID: pid, Started: uiTime(p.Started), BundleID: p.BundleID,
			InFlight: p.InFlight, Stopping: p.Stopping, Log: v.Path + "jobs/" + p.Key})
	}
	for i, j := range jobs {
		if i >= 25 {
			break
		}
		r := jobRow{Key: j.Key, Status: "running", Start: uiTime(j.StartTime), End: uiTime(j.EndTime), Tag: j.Tag,
			BundleID: j.BundleID, Log: v.Path + "jobs/" + j.Key, Active: j.Status == jobActive, RunAs: j.RunAs}
		if j.PID > 0 {
			r.PID = strconv.Itoa(j.PID)
		}
		if j.Status != jobActive {
			r.Status = "finished"
		}
		if j.ExitCode != nil {
			r.Exit = strconv.Itoa(*j.ExitCode)
		}
		v.Jobs = append(v.Jobs, r)
	}
	return nil
}

// contentTasks lists a content item's newest tasks.
func (s *Server) contentTasks(ctx context.Context, guid string, n int) ([]Task, error) {
	rows, err := s.st.db.QueryContext(ctx, `SELECT id FROM tasks WHERE content_guid = ? ORDER BY created_at DESC, id LIMIT ?`, guid, n)
	if err != nil {
		return nil, fmt.Errorf("content tasks: %w", err)
	}
	ids, err := collect(rows, func(r scanner) (string, error) { var id string; return id, r.Scan(&id) })
	if err != nil {
		return nil, err
	}
	out := make([]Task, 0, len(ids))
	for _, id := range ids {
		t, err := s.st.task(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (s *Server) logsView(ctx context.Context, ct Content, names map[string]string, taskID string, v *appView) error {
	bundles, err := s.st.listBundles(ctx, ct.GUID)
	if err != nil {
		return err
	}
	for i := len(bundles) - 1; i >= 0; i-- {
		b := bundles[i]
		v.Bundles = append(v.Bundles, bundleRow{ID: b.ID, Created: uiTime(b.CreatedAt), Size: byteSize(b.Size),
			Mode: modeLabel(b.AppMode), Active: b.ID == ct.ActiveBundleID})
	}
	tasks, err := s.contentTasks(ctx, ct.GUID, 20)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		r := taskRow{ID: t.ID, Kind: t.Kind, Status: t.Status, User: names[t.UserID], Created: uiTime(t.CreatedAt),
			Finished: uiTime(t.FinishedAt), Error: t.Error, Link: v.Path + "logs?task=" + t.ID, Running: t.Status == taskRunning}
		v.Tasks = append(v.Tasks, r)
		if taskID == t.ID || taskID == "" && v.Task == nil {
			v.Task = &v.Tasks[len(v.Tasks)-1]
			if r.Running {
				v.Elapsed = int64(s.st.now().Sub(t.CreatedAt) / time.Second)
			}
		}
	}
	if v.Task != nil {

		// The page shows the log so far; while the task runs, a script
		// asks uiTaskOutput for the rest.
		v.Lines, err = s.st.output(ctx, v.Task.ID, 0)
	}
	return err
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// uiTaskOutput answers the log page's script: the task's lines from
// ?first=N, waiting up to ?wait=N seconds (at most maxTaskWait) for more,
// as the tasks API does. Unlike that API, which only the task's starter
// may poll, it is open to everyone who may manage the content, so
// collaborators watch each other's deploys.
func (s *Server) uiTaskOutput(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	t, out, first, ok := s.pollTask(c, func(t Task) bool { return t.ContentGUID == ct.GUID })
	if !ok {
		return
	}
	c.JSON(http.StatusOK, gin.H{"lines": out, "last": first + int64(len(out)), "finished": t.Status != taskRunning,
		"status": t.Status, "error": t.Error, "finished_time": uiTime(t.FinishedAt)})
}

// uiJobPage shows one process's log (the newest lines; the download has
// all of them).
func (s *Server) uiJobPage(c *gin.Context) {
	ct, _, ok := s.visible(c)
	if !ok {
		return
	}
	j, err := s.st.job(c.Request.Context(), ct.GUID, c.Param("key"))
	if errors.Is(err, errNotFound) {
		c.Error(notFound("job"))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	lines, err := s.readJobLog(j.Key, 1000)
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	type line struct{ T, D string }
	out := make([]line, 0, len(lines))
	for _, l := range lines {
		out = append(out, line{T: time.UnixMilli(l.T).UTC().Format("15:04:05"), D: l.D})
	}
	row := jobRow{Key: j.Key, Status: "running", Start: uiTime(j.StartTime), End: uiTime(j.EndTime), Tag: j.Tag,
		BundleID: j.BundleID, Active: j.Status == jobActive, RunAs: j.RunAs}
	if j.PID > 0 {
		row.PID = strconv.Itoa(j.PID)
	}
	if !row.Active {
		row.Status = "finished"
	}
	if j.ExitCode != nil {
		row.Exit = strconv.Itoa(*j.ExitCode)
	}
	title := ct.Title
	if title == "" {
		title = ct.Name
	}
	logAPI, _ := json.Marshal("/__api__/v1/content/" + ct.GUID + "/jobs/" + j.Key + "/log?max_log_lines=1000")
	s.uiRender(c, http.StatusOK, "Process "+j.Key, "job", map[string]any{
		"Job": row, "Lines": out, "Title": title, "Path": appPath(ct.GUID), "CSRF": auth.CSRFField(c),
		"LogAPI":   template.JS(logAPI),
		"Download": "/__api__/v1/content/" + ct.GUID + "/jobs/" + j.Key + "/download",
	})
}
