package connect

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/atrium-suite/atrium/connect/bundle"
)

// wsgiRunner is runner_wsgi.py, run with python -c.
//
//go:embed runner_wsgi.py
var wsgiRunner string

// gradioRunner is runner_gradio.py, run with python -c.
//
//go:embed runner_gradio.py
var gradioRunner string

// runSpec is what a runner needs to know to start one bundle.
type runSpec struct {
	entry  bundle.Entrypoint // resolved: File is set
	mode   bundle.AppMode
	prefix string // public prefix with its slash: "/content/{guid}/" or a draft's
	port   int
}

// base is the prefix without its trailing slash, as root paths,
// SCRIPT_NAME and --prefix options want it.
func (r runSpec) base() string { return strings.TrimSuffix(r.prefix, "/") }

// pyRunner says how Connect runs one Python app mode.
type pyRunner struct {
	// server names what runs the content, for the deploy log.
	server string
	// extra are packages Connect installs next to the bundle's own: the
	// servers it runs content with, which publishers do not list because
	// Posit Connect supplies them. A version the bundle pins is kept.
	extra []string
	// requires is a module the bundle's requirements must provide: the
	// framework whose own server runs the content.
	requires string
	// strip removes the public prefix before requests reach the process,
	// for servers that add it back themselves (uvicorn's root path);
	// servers told their base path get the whole path.
	strip bool
	// args is the process's argv after the interpreter.
	args func(r runSpec) []string
	// env is added to the content's environment.
	env func(r runSpec) []string
}

// uvicornArgs runs an ASGI app. The proxy strips the prefix and uvicorn is
// told it with --root-path: uvicorn prepends the root path to the request
// path and Starlette strips it again for routing, while url_for, redirects
// and FastAPI's /docs see the public prefix.
func uvicornArgs(r runSpec) []string {
	object := r.entry.Object
	if object == "" {
		object = "app"
	}
	return []string{"-m", "uvicorn", r.entry.Module + ":" + object,
		"--host", "127.0.0.1", "--port", strconv.Itoa(r.port), "--root-path", r.base()}
}

// wsgiArgs runs a WSGI app with gunicorn through runner_wsgi.py, which
// resolves the entrypoint as Connect does.
func wsgiArgs(r runSpec) []string {
	return []string{"-c", wsgiRunner, string(r.mode), r.entry.Module, r.entry.Object, strconv.Itoa(r.port)}
}

var pyRunners = map[bundle.AppMode]pyRunner{
	bundle.ModeFastAPI: {
		server: "uvicorn",
		extra:  []string{"uvicorn"},
		strip:  true,
		args:   uvicornArgs,
	},
	// Flask and other WSGI apps. gunicorn takes SCRIPT_NAME from its
	// environment, strips it from each request's path and passes it on, so
	// the app routes as if at / while url_for and redirects carry the
	// prefix. It must receive the whole path, or it refuses the request.
	bundle.ModePythonAPI: {
		server: "gunicorn",
		extra:  []string{"gunicorn"},
		args:   wsgiArgs,
		env:    func(r runSpec) []string { return []string{"SCRIPT_NAME=" + r.base()} },
	},
	// Dash registers its routes under DASH_ROUTES_PATHNAME_PREFIX and
	// points the browser at DASH_REQUESTS_PATHNAME_PREFIX; both are the
	// public prefix, so its Flask server gets the whole path (and no
	// SCRIPT_NAME, which would take the prefix off again).
	bundle.ModeDash: {
		server: "gunicorn",
		extra:  []string{"gunicorn"},
		args:   wsgiArgs,
		env: func(r runSpec) []string {
			return []string{"DASH_REQUESTS_PATHNAME_PREFIX=" + r.prefix, "DASH_ROUTES_PATHNAME_PREFIX=" + r.prefix}
		},
	},
	// Streamlit serves the page, its assets and the /_stcore/stream
	// websocket under baseUrlPath. The file watcher is off: bundles do not
	// change, and it would hold inotify watches for every running app.
	bundle.ModeStreamlit: {
		server:   "streamlit",
		requires: "streamlit",
		args: func(r runSpec) []string {
			return []string{"-m", "streamlit", "run", r.entry.File,
				"--server.port", strconv.Itoa(r.port), "--server.address", "127.0.0.1",
				"--server.headless", "true", "--server.baseUrlPath", strings.Trim(r.prefix, "/"),
				"--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"}
		},
	},
	// bokeh serve answers under --prefix, redirecting it to the app (named
	// after the file). Viewers reach it through this server's proxy at
	// whatever host name they use, and only signed-in ones, so the
	// websocket's Origin is not restricted; --use-xheaders makes bokeh
	// honour X-Forwarded-Proto when building URLs.
	bundle.ModeBokeh: {
		server:   "bokeh serve",
		requires: "bokeh",
		args: func(r runSpec) []string {
			return []string{"-m", "bokeh", "serve", r.entry.File,
				"--port", strconv.Itoa(r.port), "--address", "127.0.0.1",
				"--prefix", r.base(), "--allow-websocket-origin=*", "--use-xheaders"}
		},
	},
	// panel serve is bokeh serve with Panel's extensions: the same
	// prefix, redirect to the app named after the file (a .py or a
	// notebook), websocket and forwarded-header handling as Bokeh.
	bundle.ModePanel: {
		server:   "panel serve",
		requires: "panel",
		args: func(r runSpec) []string {
			return []string{"-m", "panel", "serve", r.entry.File,
				"--port", strconv.Itoa(r.port), "--address", "127.0.0.1",
				"--prefix", r.base(), "--allow-websocket-origin=*", "--use-xheaders"}
		},
	},
	// Gradio routes at / and builds its URLs from the root path (and the
	// X-Forwarded-Host the proxy sets), so the proxy strips the prefix.
	// runner_gradio.py runs the app file as its author does and forces
	// the address, port and root path on whatever launch() it calls; the
	// GRADIO_* variables say the same to code that reads them. Analytics
	// are off: content has no business calling out on every start.
	bundle.ModeGradio: {
		server:   "gradio",
		requires: "gradio",
		strip:    true,
		args: func(r runSpec) []string {
			return []string{"-c", gradioRunner, r.entry.File, r.entry.Object, strconv.Itoa(r.port), r.base()}
		},
		env: func(r runSpec) []string {
			return []string{"GRADIO_SERVER_NAME=127.0.0.1", "GRADIO_SERVER_PORT=" + strconv.Itoa(r.port),
				"GRADIO_ROOT_PATH=" + r.base(), "GRADIO_ANALYTICS_ENABLED=False"}
		},
	},
	// Voilà serves the notebook (or, for a multi-notebook bundle with no
	// entrypoint, the directory's notebooks) under --base_url, and each
	// page's kernel through a websocket under the same prefix. Its
	// websockets keep Jupyter's own check that Origin matches Host (the
	// proxy keeps the browser's Host): a kernel is a live Python process
	// of the content, so another site must not open one with the
	// viewer's cookies. Connect supplies ipykernel, the notebook's
	// kernel, which publishers rarely list; voila itself they must.
	bundle.ModeVoila: {
		server:   "voila",
		extra:    []string{"ipykernel"},
		requires: "voila",
		args: func(r runSpec) []string {
			args := []string{"-m", "voila"}
			if r.entry.File != "" {
				args = append(args, r.entry.File)
			}
			return append(args, "--no-browser", "--port="+strconv.Itoa(r.port),
				"--Voila.ip=127.0.0.1", "--base_url="+r.prefix)
		},
	},
	// Shiny apps are ASGI apps with a websocket, run like FastAPI.
	// Express apps name shiny.express.app:<escaped file>, which builds the
	// app from the file when uvicorn imports it.
	bundle.ModePythonShiny: {
		server:   "uvicorn",
		extra:    []string{"uvicorn"},
		requires: "shiny",
		strip:    true,
		args:     uvicornArgs,
	},
}

// runnableModes lists the modes this server runs, for messages.
func runnableModes() string {
	modes := slices.Sorted(maps.Keys(pyRunners))
	names := []string{string(bundle.ModeStatic)}
	for _, m := range modes {
		names = append(names, string(m))
	}
	return strings.Join(names, ", ")
}

// extraPackages are the packages Connect adds to mode's environment.
func extraPackages(mode bundle.AppMode) []string { return pyRunners[mode].extra }

// entryName is the entrypoint as the deploy log shows it.
func entryName(e bundle.Entrypoint) string {
	switch {
	case e.Object != "":
		return e.Module + ":" + e.Object
	case e.File != "":
		return e.File
	}
	return e.Module
}

// checkModule reports an error when the environment's python cannot
// import module, so a bundle missing its framework fails with that rather
// than with a process that exits before it listens. -I keeps the bundle's
// own files (and PYTHON* variables) out of the lookup.
func checkModule(ctx context.Context, python, module string) error {
	cmd := exec.CommandContext(ctx, python, "-I", "-c",
		"import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 3)", module)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		return fmt.Errorf("no module named %s in the environment", module)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", python, err, bytes.TrimSpace(out))
	}
	return nil
}
