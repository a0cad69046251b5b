package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/connect/bundle"
	"github.com/atrium-suite/atrium/shared/auth"
	"github.com/atrium-suite/atrium/shared/h1"
	"github.com/atrium-suite/atrium/shared/httpx"
	"github.com/atrium-suite/atrium/shared/launcher"
	"github.com/atrium-suite/atrium/shared/proxy"
)

// instance is one bundle of one content item, ready to answer: a pool of
// processes behind a proxy, or a directory of static files.
type instance struct {
	bundleID int64
	pool     *pool // nil for static content
	handler  http.Handler
}

func (i *instance) stop() {
	if i != nil && i.pool != nil {
		i.pool.close()
	}
}

// app is what runs for one content item: its active bundle and, while a
// deploy is being verified, a draft.
type app struct {
	deploy sync.Mutex // one deploy of the content at a time
	mu     sync.Mutex
	active *instance
	draft  *instance
}

// activeBundle is the running instance of bundle id, or nil.
func (a *app) activeBundle(id int64) *instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active != nil && a.active.bundleID == id {
		return a.active
	}
	return nil
}

// runtime keeps content running.
type runtime struct {
	s        *Server
	launcher launcher.Launcher
	mu       sync.Mutex
	apps     map[string]*app
	closed   bool // stopAll ran: whatever starts late is stopped at once
}

func (r *runtime) app(guid string) *app {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.apps[guid]
	if !ok {
		a = &app{}
		r.apps[guid] = a
	}
	return a
}

// contentPrefix is where content is served; a draft bundle is previewed
// under _bundle{id}/, where rsconnect verifies it before activating it.
func contentPrefix(guid string, draftID int64) string {
	p := "/content/" + guid + "/"
	if draftID != 0 {
		p += "_bundle" + strconv.FormatInt(draftID, 10) + "/"
	}
	return p
}

// jobOutput sends a content process's output to the server log (at debug:
// the job's own log keeps it) and, while it starts during a deploy, to the
// deploy's log.
type jobOutput struct {
	log *slog.Logger
	mu  sync.Mutex
	tee io.Writer
}

func (o *jobOutput) Write(p []byte) (int, error) {
	if o.log.Enabled(context.Background(), slog.LevelDebug) {
		o.log.Debug("content output", "line", strings.TrimRight(string(p), "\n"))
	}
	o.mu.Lock()
	tee := o.tee
	o.mu.Unlock()
	if tee != nil {
		tee.Write(p)
	}
	return len(p), nil
}

func (o *jobOutput) setTee(w io.Writer) {
	o.mu.Lock()
	o.tee = w
	o.mu.Unlock()
}

// start readies the bundle extracted in dir: its environment and a pool
// that keeps as many processes running as the content's settings ask.
// With verify (a deploy), it returns once a first process answers, so a
// bundle that does not start fails its deploy; otherwise the scheduler
// starts processes when requests come, never the request handler itself.
// draft selects the preview prefix.
func (r *runtime) start(ctx context.Context, ct Content, b Bundle, m bundle.Manifest, dir string, draft, verify bool, log io.Writer, say func(string, ...any)) (*instance, error) {
	guid := ct.GUID
	var draftID int64
	if draft {
		draftID = b.ID
	}
	prefix := contentPrefix(guid, draftID)
	mode := m.Metadata.AppMode
	if mode == bundle.ModeStatic {
		return &instance{bundleID: b.ID, handler: staticHandler(dir, prefix, m)}, nil
	}
	rn, ok := pyRunners[mode]
	if !ok {
		return nil, failf("app mode %s cannot be run by this server yet (these can: %s)", mode, runnableModes())
	}
	pe, release, err := r.s.pythonEnv(ctx, m, dir, log, say)
	if err != nil {
		return nil, err
	}
	if !pe.built {
		say("Reusing Python %s environment %s", pe.version, pe.key)
	}
	env := pe.path
	pyBin := filepath.Join(env, "bin", "python")
	if rn.requires != "" {
		if err := checkModule(ctx, pyBin, rn.requires); err != nil {
			release()
			return nil, failf("%s content is run with %s, which its requirements file must list: %v", mode, rn.requires, err)
		}
	}
	// What the bundle runs with, for the packages API.
	err = r.s.recordEnvironment(ctx, pe, guid, b.ID)
	release()
	if err != nil {
		r.s.Log.Warn("recording the packages of the content's environment", "content_guid", guid, "bundle_id", b.ID, "env", pe.key, "err", err)
	}
	// Every process start readies the environment again: one deleted since
	// (a runtime cache delete) is built again before the process starts.
	envLog := r.s.Log.With("content_guid", guid, "bundle_id", b.ID)
	acquire := func(ctx context.Context) (func(), error) {
		out := &jobOutput{log: envLog}
		say := func(f string, args ...any) { envLog.Info(fmt.Sprintf(f, args...)) }
		again, release, err := r.s.pythonEnv(ctx, m, dir, out, say)
		if err != nil {
			return nil, err
		}
		if again.built {
			if err := r.s.recordEnvironment(context.WithoutCancel(ctx), again, guid, 0); err != nil {
				envLog.Warn("recording the packages of a rebuilt environment", "env", again.key, "err", err)
			}
		}
		return release, nil
	}
	runAs, err := r.s.contentUser(dir)
	if err != nil {
		return nil, err
	}
	spec := func(ctx context.Context, port int) (launcher.Spec, error) {
		rs := runSpec{entry: m.Entry, mode: mode, prefix: prefix, port: port}
		cenv, err := r.contentEnv(ctx, guid, env, dir)
		if err != nil {
			return launcher.Spec{}, err
		}
		if rn.env != nil {
			cenv = append(cenv, rn.env(rs)...)
		}
		return launcher.Spec{
			Command: append([]string{pyBin}, rn.args(rs)...),
			Dir:     dir,
			Env:     cenv,
			User:    runAs,
		}, nil
	}
	p, err := r.s.newPool(poolConfig{
		guid: guid, bundleID: b.ID, tag: jobTag(mode), prefix: prefix, strip: rn.strip,
		sched: r.s.scheduleFor(ct.Sched), spec: spec, envKey: pe.key, acquire: acquire,
	})
	if err != nil {
		return nil, err
	}
	if !verify {
		p.scale() // min_processes
		return &instance{bundleID: b.ID, pool: p, handler: p.handler}, nil
	}
	say("Starting %s with %s", entryName(m.Entry), rn.server)
	if err := p.startFirst(ctx, log); err != nil {
		p.close()
		return nil, err
	}
	return &instance{bundleID: b.ID, pool: p, handler: p.handler}, nil
}

// contentEnv is a content process's whole environment: the variables its
// publishers set, then the suite's own, which come later and so win
// (a publisher cannot redirect CONNECT_SERVER). Nothing of the server's
// environment is inherited but PATH's system part and the locale.
func (r *runtime) contentEnv(ctx context.Context, guid, env, dir string) ([]string, error) {
	vars, err := r.s.st.EnvVars(ctx, guid)
	if err != nil {
		return nil, fmt.Errorf("environment variables: %w", err)
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names)+9)
	for _, name := range names {
		out = append(out, name+"="+vars[name])
	}
	return append(out,
		"PATH="+filepath.Join(env, "bin")+":/usr/local/bin:/usr/bin:/bin",
		"HOME="+dir,
		"LANG=C.UTF-8",
		"PYTHONUNBUFFERED=1",
		"VIRTUAL_ENV="+env,
		"CONNECT_CONTENT_GUID="+guid,
		"CONNECT_SERVER="+r.s.URL()+"/",
		"RSTUDIO_PRODUCT=CONNECT",
		"POSIT_PRODUCT=CONNECT",
	), nil
}

// install puts inst in place as the content's active (or draft) instance
// and stops the one it replaces.
func (r *runtime) install(guid string, inst *instance, draft bool) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		inst.stop()
		return
	}
	a := r.app(guid)
	a.mu.Lock()
	var old *instance
	if draft {
		old, a.draft = a.draft, inst
	} else {
		old, a.active = a.active, inst
		if a.draft != nil && a.draft.bundleID == inst.bundleID {
			// The draft was verified and is now active: its preview goes.
			defer a.draft.stop()
			a.draft = nil
		}
	}
	a.mu.Unlock()
	old.stop()
}

// reschedule gives ct's running processes its changed settings.
// Content not running yet is started when it now asks for processes.
func (r *runtime) reschedule(ct Content) {
	sc := r.s.scheduleFor(ct.Sched)
	a := r.app(ct.GUID)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, inst := range []*instance{a.active, a.draft} {
		if inst != nil && inst.pool != nil {
			inst.pool.setSchedule(sc)
		}
	}
	if a.active == nil && sc.minProcs > 0 && ct.ActiveBundleID != 0 {
		go r.s.warm(r.s.bg, ct)
	}
}

// warm starts ct's active bundle in the background (min_processes).
func (s *Server) warm(ctx context.Context, ct Content) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if _, err := s.ensureActive(ctx, ct); err != nil {
		s.Log.Warn("starting content with min_processes", "content_guid", ct.GUID, "err", err)
	}
}

// warmAll starts, one after another, the deployed content whose settings
// keep processes running, as the server comes up.
func (s *Server) warmAll(ctx context.Context) {
	list, err := s.st.listContent(ctx, "", "")
	if err != nil {
		s.Log.Warn("listing content to start", "err", err)
		return
	}
	for _, ct := range list {
		if ctx.Err() != nil {
			return
		}
		if ct.ActiveBundleID != 0 && s.scheduleFor(ct.Sched).minProcs > 0 {
			s.warm(ctx, ct)
		}
	}
}

// restart replaces the running processes of guid's active bundle, so they
// see changed environment variables (posit-sdk's content.restart() works
// by changing one). Processes on other servers sharing the database get
// the new values when they next start.
func (r *runtime) restart(guid string) {
	a := r.app(guid)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.active != nil && a.active.pool != nil {
		a.active.pool.restart()
	}
}

// kill stops the running process with job key of content guid.
func (r *runtime) kill(guid, key string) bool {
	a := r.app(guid)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, inst := range []*instance{a.active, a.draft} {
		if inst != nil && inst.pool != nil && inst.pool.kill(key) {
			return true
		}
	}
	return false
}

// processes lists the running processes of guid (active bundle first).
func (r *runtime) processes(guid string) []procInfo {
	a := r.app(guid)
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []procInfo
	for _, inst := range []*instance{a.active, a.draft} {
		if inst != nil && inst.pool != nil {
			out = append(out, inst.pool.processes()...)
		}
	}
	return out
}

// remove stops everything of deleted content and deletes its files.
func (r *runtime) remove(ctx context.Context, guid string) {
	r.mu.Lock()
	a := r.apps[guid]
	delete(r.apps, guid)
	r.mu.Unlock()
	if a != nil {
		a.mu.Lock()
		a.active.stop()
		a.draft.stop()
		a.mu.Unlock()
	}
	os.RemoveAll(filepath.Join(r.s.appsDir, guid))
}

// stopAll stops every content process (server shutdown).
func (r *runtime) stopAll() {
	r.mu.Lock()
	apps := r.apps
	r.apps = map[string]*app{}
	r.closed = true
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Go(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.active.stop()
			a.draft.stop()
		})
	}
	wg.Wait()
}

// staticHandler serves the extracted files under prefix, with index.html
// (or the manifest's primary document) for directories.
func staticHandler(dir, prefix string, m bundle.Manifest) http.Handler {
	fs := http.FileServerFS(os.DirFS(dir))
	primary := m.Metadata.PrimaryHTML
	if primary == "" && m.Metadata.Entrypoint != "" && strings.HasSuffix(m.Metadata.Entrypoint, ".html") {
		primary = m.Metadata.Entrypoint
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && primary != "" && primary != "index.html" {
			if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
				http.ServeFile(w, r, filepath.Join(dir, filepath.FromSlash(path.Clean("/"+primary))))
				return
			}
		}
		if path.Base(r.URL.Path) == "manifest.json" && path.Dir(r.URL.Path) == "/" {
			http.NotFound(w, r)
			return
		}
		fs.ServeHTTP(w, r)
	})
	return http.StripPrefix(strings.TrimSuffix(prefix, "/"), inner)
}

// serveContent answers /content/{guid}/…: the active bundle, or a draft
// under _bundle{id}/. Any signed-in user may view content in this slice.
// credentialsHeader tells content who the viewer is.
const credentialsHeader = "RStudio-Connect-Credentials"

func (s *Server) serveContent(c *gin.Context) {
	guid, rest := c.Param("guid"), c.Param("path")
	if rest == "" {
		// SDK restart() asks for /content/{guid} without the slash.
		target := "/content/" + guid + "/"
		if q := c.Request.URL.RawQuery; q != "" {
			target += "?" + q
		}
		c.Redirect(http.StatusMovedPermanently, target)
		return
	}
	ctx := c.Request.Context()
	ct, err := s.st.contentForServing(ctx, guid)
	if errors.Is(err, errNotFound) {
		c.Error(httpx.NotFound("no content %s", guid))
		return
	} else if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	// Who may see it: the owner, admins, those with a permission, and —
	// by its access type — every signed-in user or everyone. Anyone else
	// is asked to sign in, or, signed in, told it does not exist.
	u, signedIn := auth.CurrentUser(c)
	if a, err := s.st.access(ctx, ct, u); err != nil {
		c.Error(httpx.Internal(err))
		return
	} else if a < accessView {
		if !signedIn {
			s.Auth.Require(auth.RoleViewer)(c)
			return
		}
		c.Error(httpx.NotFound("no content %s", guid))
		return
	}
	a := s.rt.app(guid)
	var inst *instance
	if draft, ok := strings.CutPrefix(rest, "/_bundle"); ok {
		idStr, _, _ := strings.Cut(draft, "/")
		id, _ := parseBundleID(idStr)
		a.mu.Lock()
		if a.draft != nil && a.draft.bundleID == id {
			inst = a.draft
		} else if a.active != nil && a.active.bundleID == id && ct.ActiveBundleID == id {
			a.mu.Unlock()
			c.Redirect(http.StatusFound, contentPrefix(guid, 0)+strings.TrimPrefix(strings.TrimPrefix(draft, idStr), "/"))
			return
		}
		a.mu.Unlock()
		if inst == nil {
			c.Error(httpx.NotFound("bundle %s of content %s is not being previewed", idStr, guid))
			return
		}
	} else {
		inst, err = s.ensureActive(ctx, ct)
		if err != nil {
			c.Error(err)
			return
		}
	}
	// Content learns who is asking from RStudio-Connect-Credentials, as on
	// Posit Connect; a client-sent one is dropped so it cannot be forged.
	c.Request.Header.Del(credentialsHeader)
	if signedIn {
		creds, err := s.credentials(ctx, u)
		if err != nil {
			c.Error(httpx.Internal(err))
			return
		}
		c.Request.Header.Set(credentialsHeader, creds)
	}
	inst.handler.ServeHTTP(c.Writer, c.Request)
}

// credentials is the RStudio-Connect-Credentials value for a signed-in
// viewer.
func (s *Server) credentials(ctx context.Context, u auth.User) (string, error) {
	// Keyed by the name too: it comes from the accounts, whose changes
	// Connect's database version does not see.
	return s.st.servingCreds.Get(ctx, s.st.db, u.ID+"\x00"+u.Username, func() (string, error) {
		groups, err := s.st.groupNamesOf(ctx, u.ID)
		if err != nil {
			return "", err
		}
		creds, _ := json.Marshal(map[string]any{"user": u.Username, "groups": groups})
		return string(creds), nil
	})
}

// anonymous is the fast path's header change for a viewer who is not
// signed in: a client-sent credentials header is only removed.
var anonymous = http.Header{credentialsHeader: nil}

// serveContentFast serves /content/{guid}/… on the server's fast path
// (httpx.HandleFast) when the answer is the running app's: the caller may
// view the item and its active bundle runs behind the proxy. Everything
// else — redirects, sign-in, 404s, drafts, static content, an app still to
// be started, a failed lookup — is left to serveContent, which decides
// the same way and answers.
func (s *Server) serveContentFast(w http.ResponseWriter, r *h1.Request) bool {
	guid, rest, ok := strings.Cut(strings.TrimPrefix(r.Path, "/content/"), "/")
	if !ok || guid == "" || strings.ContainsRune(guid, '%') || strings.HasPrefix(rest, "_bundle") {
		return false
	}
	ctx := r.Ctx
	u, signedIn, ok := s.Auth.IdentifyFast(ctx, r)
	if !ok {
		return false
	}
	ct, err := s.st.contentForServing(ctx, guid)
	if err != nil || ct.ActiveBundleID == 0 {
		return false
	}
	if a, err := s.st.access(ctx, ct, u); err != nil || a < accessView {
		return false
	}
	inst := s.rt.app(guid).activeBundle(ct.ActiveBundleID)
	if inst == nil {
		return false
	}
	p, ok := inst.handler.(*proxy.Proxy)
	if !ok {
		return false
	}
	extra := anonymous
	if signedIn {
		creds, err := s.credentials(ctx, u)
		if err != nil {
			return false
		}
		extra = http.Header{credentialsHeader: {creds}}
	}
	return p.ServeFast(w, r, extra)
}

// ensureActive returns the active bundle of ct, starting its pool when it
// is not running (after a server restart). A running pool restarts its own
// crashed processes.
func (s *Server) ensureActive(ctx context.Context, ct Content) (*instance, error) {
	if ct.ActiveBundleID == 0 {
		return nil, httpx.Errorf(http.StatusNotFound, "content %s has not been deployed yet", ct.GUID)
	}
	a := s.rt.app(ct.GUID)
	if inst := a.activeBundle(ct.ActiveBundleID); inst != nil {
		return inst, nil
	}
	// Starting can take a while; one deploy-or-start at a time per content,
	// and another request may have started it while this one waited.
	a.deploy.Lock()
	defer a.deploy.Unlock()
	if inst := a.activeBundle(ct.ActiveBundleID); inst != nil {
		return inst, nil
	}
	b, err := s.st.bundle(ctx, ct.GUID, ct.ActiveBundleID)
	if err != nil {
		return nil, httpx.Internal(err)
	}
	log := s.Log.With("content_guid", ct.GUID, "bundle_id", b.ID)
	say := func(f string, args ...any) { log.Info(fmt.Sprintf(f, args...)) }
	w := &jobOutput{log: log}
	dir, m, err := s.prepare(ctx, ct.GUID, b, say)
	if err != nil {
		return nil, httpx.Internal(err)
	}
	inst, err := s.rt.start(ctx, ct, b, m, dir, false, false, w, say)
	if err != nil {
		return nil, &httpx.Error{Status: http.StatusBadGateway, Msg: "the content could not be started; see the server log", Err: err}
	}
	s.rt.install(ct.GUID, inst, false)
	return inst, nil
}
