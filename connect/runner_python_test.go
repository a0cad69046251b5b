package connect

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/atrium-suite/atrium/connect/bundle"
)

// TestRunnerCommands pins how each mode is started under a draft prefix:
// which server, what it is told of the prefix, and whether the proxy
// strips it (exactly one of the two must hold the prefix).
func TestRunnerCommands(t *testing.T) {
	const prefix = "/content/g1/_bundle3/"
	tests := []struct {
		mode    bundle.AppMode
		entry   bundle.Entrypoint
		argv    []string // checked as a contiguous run in the argv
		env     []string
		strip   bool
		extra   []string
		require string
	}{
		{bundle.ModeFastAPI, bundle.Entrypoint{Module: "app", File: "app.py"},
			[]string{"-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "8000", "--root-path", "/content/g1/_bundle3"}, nil, true, []string{"uvicorn"}, ""},
		{bundle.ModePythonAPI, bundle.Entrypoint{Module: "pkg.server", Object: "application", File: "pkg/server.py"},
			[]string{"python-api", "pkg.server", "application", "8000"}, []string{"SCRIPT_NAME=/content/g1/_bundle3"}, false, []string{"gunicorn"}, ""},
		{bundle.ModeDash, bundle.Entrypoint{Module: "app", File: "app.py"},
			[]string{"python-dash", "app", "", "8000"}, []string{"DASH_REQUESTS_PATHNAME_PREFIX=" + prefix, "DASH_ROUTES_PATHNAME_PREFIX=" + prefix}, false, []string{"gunicorn"}, ""},
		{bundle.ModeStreamlit, bundle.Entrypoint{Module: "app", File: "app.py"},
			[]string{"-m", "streamlit", "run", "app.py", "--server.port", "8000", "--server.address", "127.0.0.1", "--server.headless", "true", "--server.baseUrlPath", "content/g1/_bundle3"}, nil, false, nil, "streamlit"},
		{bundle.ModeBokeh, bundle.Entrypoint{File: "my-app.py"},
			[]string{"-m", "bokeh", "serve", "my-app.py", "--port", "8000", "--address", "127.0.0.1", "--prefix", "/content/g1/_bundle3"}, nil, false, nil, "bokeh"},
		{bundle.ModePythonShiny, bundle.Entrypoint{Module: "shiny.express.app", Object: "app_2e_py", File: "app.py"},
			[]string{"-m", "uvicorn", "shiny.express.app:app_2e_py", "--host", "127.0.0.1", "--port", "8000", "--root-path", "/content/g1/_bundle3"}, nil, true, []string{"uvicorn"}, "shiny"},
		{bundle.ModePanel, bundle.Entrypoint{Module: "app", File: "app.py"},
			[]string{"-m", "panel", "serve", "app.py", "--port", "8000", "--address", "127.0.0.1", "--prefix", "/content/g1/_bundle3", "--allow-websocket-origin=*"}, nil, false, nil, "panel"},
		{bundle.ModePanel, bundle.Entrypoint{File: "dashboard.ipynb"},
			[]string{"-m", "panel", "serve", "dashboard.ipynb", "--port", "8000"}, nil, false, nil, "panel"},
		{bundle.ModeGradio, bundle.Entrypoint{Module: "app", Object: "demo", File: "app.py"},
			[]string{gradioRunner, "app.py", "demo", "8000", "/content/g1/_bundle3"},
			[]string{"GRADIO_SERVER_NAME=127.0.0.1", "GRADIO_SERVER_PORT=8000", "GRADIO_ROOT_PATH=/content/g1/_bundle3", "GRADIO_ANALYTICS_ENABLED=False"},
			true, nil, "gradio"},
		{bundle.ModeVoila, bundle.Entrypoint{File: "notebooks/hello.ipynb"},
			[]string{"-m", "voila", "notebooks/hello.ipynb", "--no-browser", "--port=8000", "--Voila.ip=127.0.0.1", "--base_url=" + prefix}, nil, false, []string{"ipykernel"}, "voila"},
		// A multi-notebook bundle: Voilà serves the directory.
		{bundle.ModeVoila, bundle.Entrypoint{},
			[]string{"-m", "voila", "--no-browser", "--port=8000", "--Voila.ip=127.0.0.1", "--base_url=" + prefix}, nil, false, []string{"ipykernel"}, "voila"},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode)+"/"+entryName(tt.entry), func(t *testing.T) {
			rn, ok := pyRunners[tt.mode]
			if !ok {
				t.Fatalf("no runner for %s", tt.mode)
			}
			rs := runSpec{entry: tt.entry, mode: tt.mode, prefix: prefix, port: 8000}
			argv := rn.args(rs)
			if !containsRun(argv, tt.argv) {
				t.Errorf("argv %q does not contain %q", argv, tt.argv)
			}
			var env []string
			if rn.env != nil {
				env = rn.env(rs)
			}
			if !slices.Equal(env, tt.env) {
				t.Errorf("env %q, want %q", env, tt.env)
			}
			if rn.strip != tt.strip || !slices.Equal(rn.extra, tt.extra) || rn.requires != tt.require {
				t.Errorf("strip %v extra %q requires %q, want %v %q %q", rn.strip, rn.extra, rn.requires, tt.strip, tt.extra, tt.require)
			}
		})
	}
}

func containsRun(s, run []string) bool {
	for i := 0; i+len(run) <= len(s); i++ {
		if slices.Equal(s[i:i+len(run)], run) {
			return true
		}
	}
	return false
}

// TestUnrunnableModeFails: a mode without a runner fails the deploy with
// a message naming it and what can run, before anything is built.
func TestUnrunnableModeFails(t *testing.T) {
	m := bundle.Manifest{}
	m.Metadata.AppMode = bundle.ModeTensorFlow
	_, err := (&runtime{}).start(context.Background(), Content{GUID: "g1"}, Bundle{ID: 1}, m, t.TempDir(), false, true, nil, func(string, ...any) {})
	var tf *taskFailure
	if !errors.As(err, &tf) {
		t.Fatalf("err %v, want a task failure", err)
	}
	for _, want := range []string{"tensorflow-saved-model cannot be run", "python-api", "python-streamlit", "python-gradio", "python-panel", "jupyter-voila", "static"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
}

// fakeGunicorn stands in for gunicorn.app.base: run() prints the options
// the runner set and what the loaded app answers when called, so the test
// needs no packages beyond python3. Its settings lack
// control_socket_disable, as gunicorns before 25.1 do.
const fakeGunicorn = `
import json

class Cfg:
    settings = {"bind", "workers", "worker_class", "threads", "graceful_timeout", "errorlog"}
    def __init__(self):
        self.values = {}
    def set(self, k, v):
        if k not in self.settings:
            raise AttributeError(k)
        self.values[k] = v

class BaseApplication:
    def __init__(self):
        self.cfg = Cfg()
        self.load_config()
    def run(self):
        app = self.load()
        print(json.dumps({"cfg": self.cfg.values, "answer": app({}, None)}))
`

// TestWSGIRunnerResolvesEntrypoint runs runner_wsgi.py with python3 on
// sample modules: Connect's fallback order for a bare module, factories,
// Dash's .server, and clear failures.
func TestWSGIRunnerResolvesEntrypoint(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	dir := t.TempDir()
	files := map[string]string{
		"gunicorn/__init__.py":     "",
		"gunicorn/app/__init__.py": "",
		"gunicorn/app/base.py":     fakeGunicorn,
		"explicit.py":              "def app(e, s): return 'app'\ndef other(e, s): return 'other'\n",
		"appfirst.py":              "def app(e, s): return 'app'\ndef application(e, s): return 'application'\n",
		"application.py":           "def application(e, s): return 'application'\ndef create_app(): raise SystemExit('factory called')\n",
		"factory.py":               "def create_app():\n    def wsgi(e, s): return 'created'\n    return wsgi\n",
		"maker.py":                 "def make_app():\n    def wsgi(e, s): return 'made'\n    return wsgi\n",
		"nothing.py":               "x = 1\n",
		"notcallable.py":           "app = 42\n",
		"dashapp.py":               "class Dash:\n    def server(self, e, s): return 'flask server'\napp = Dash()\n",
		"pkg/__init__.py":          "",
		"pkg/server.py":            "def app(e, s): return 'pkg'\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(mode, module, object string) (string, error) {
		rs := runSpec{entry: bundle.Entrypoint{Module: module, Object: object}, mode: bundle.AppMode(mode), prefix: "/content/g/", port: 8123}
		cmd := exec.Command(py, wsgiArgs(rs)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tt := range []struct{ mode, module, object, answer string }{
		{"python-api", "explicit", "other", "other"},
		{"python-api", "appfirst", "", "app"},
		{"python-api", "application", "", "application"},
		{"python-api", "factory", "", "created"},
		{"python-api", "maker", "", "made"},
		{"python-api", "pkg.server", "", "pkg"},
		{"python-dash", "dashapp", "", "flask server"},
	} {
		out, err := run(tt.mode, tt.module, tt.object)
		var got struct {
			Cfg    map[string]any
			Answer string
		}
		if err != nil || json.Unmarshal([]byte(out), &got) != nil {
			t.Errorf("%s %s:%s: %v\n%s", tt.mode, tt.module, tt.object, err, out)
			continue
		}
		if got.Answer != tt.answer {
			t.Errorf("%s %s:%s served %q, want %q", tt.mode, tt.module, tt.object, got.Answer, tt.answer)
		}
		if got.Cfg["bind"] != "127.0.0.1:8123" || got.Cfg["worker_class"] != "gthread" {
			t.Errorf("gunicorn options %v", got.Cfg)
		}
	}
	for _, tt := range []struct{ mode, module, object, want string }{
		{"python-api", "nothing", "", "module nothing has none of app, application, create_app, make_app"},
		{"python-api", "explicit", "missing", "module explicit has none of missing"},
		{"python-api", "notcallable", "", "notcallable:app is not a WSGI application"},
		{"python-dash", "explicit", "", "explicit:app is not a Dash app"},
		{"python-api", "nosuchmodule", "", "No module named 'nosuchmodule'"},
	} {
		out, err := run(tt.mode, tt.module, tt.object)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("%s %s:%s: %v, output %q, want a failure saying %q", tt.mode, tt.module, tt.object, err, out, tt.want)
		}
	}
}

// TestCheckModule: the framework check tells a missing module from a
// present one and ignores the working directory.
func TestCheckModule(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	ctx := context.Background()
	if err := checkModule(ctx, py, "json"); err != nil {
		t.Errorf("json: %v", err)
	}
	err = checkModule(ctx, py, "atrium_no_such_module")
	if err == nil || !strings.Contains(err.Error(), "no module named atrium_no_such_module") {
		t.Errorf("missing module: %v", err)
	}
}

// TestExtraPackages: the servers Connect adds, which are part of the
// environment key. FastAPI's stays "uvicorn", so environments built
// before the runner table are still reused.
func TestExtraPackages(t *testing.T) {
	if got := extraPackages(bundle.ModeFastAPI); !slices.Equal(got, []string{"uvicorn"}) {
		t.Errorf("fastapi extra %q", got)
	}
	if got := extraPackages(bundle.ModePythonAPI); !slices.Equal(got, []string{"gunicorn"}) {
		t.Errorf("python-api extra %q", got)
	}
	if got := extraPackages(bundle.ModeStreamlit); len(got) != 0 {
		t.Errorf("streamlit extra %q", got)
	}
}

// fakeGradio stands in for gradio: Blocks.launch prints which app it
// launched with which settings, so the test needs no packages beyond
// python3. Its launch has the parameters the runner forces and one it
// must pass through (auth).
const fakeGradio = `
import json
import os

class Blocks:
    def __init__(self, name):
        self.name = name
    def launch(self, inline=None, inbrowser=False, share=None, auth=None, server_name=None,
               server_port=None, prevent_thread_lock=False, root_path=None, ssr_mode=None):
        print(json.dumps({"app": self.name, "inbrowser": inbrowser, "share": share, "auth": auth,
                          "server_name": server_name, "server_port": server_port,
                          "prevent_thread_lock": prevent_thread_lock, "root_path": root_path,
                          "ssr_mode": ssr_mode, "temp_dir": os.environ.get("GRADIO_TEMP_DIR")}))

class Interface(Blocks):
    pass
`

// TestGradioRunnerLaunches runs runner_gradio.py with python3 on sample
// apps: whatever launch() the app calls (with its own port, a share
// link, under a __main__ guard) serves on Connect's address, port and
// root path; an app that does not launch is found by name and launched;
// and the ambiguous cases fail saying why.
func TestGradioRunnerLaunches(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	dir := t.TempDir()
	files := map[string]string{
		"gradio/__init__.py": fakeGradio,
		"launches.py":        "import gradio as gr\ndemo = gr.Blocks('launches')\ndemo.launch(server_name='0.0.0.0', server_port=7860, share=True, auth=('u', 'p'))\n",
		"positional.py":      "import gradio as gr\ngr.Blocks('positional').launch(False, True, True)\n",
		"guarded.py":         "import gradio as gr\ndemo = gr.Interface('guarded')\nif __name__ == '__main__':\n    demo.launch()\n",
		"nolaunch.py":        "import gradio as gr\napp = gr.Interface('app')\n",
		"named.py":           "import gradio as gr\ndemo = gr.Blocks('demo')\nui = gr.Blocks('ui')\n",
		"onlyone.py":         "import gradio as gr\npage = gr.Blocks('page')\n",
		"twolaunches.py":     "import gradio as gr\ngr.Blocks('a').launch()\ngr.Blocks('b').launch()\n",
		"two.py":             "import gradio as gr\na = gr.Blocks('a')\nb = gr.Blocks('b')\n",
		"none.py":            "x = 1\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rn := pyRunners[bundle.ModeGradio]
	run := func(file, object string) (string, error) {
		rs := runSpec{entry: bundle.Entrypoint{File: file, Object: object}, mode: bundle.ModeGradio, prefix: "/content/g/", port: 8123}
		cmd := exec.Command(py, rn.args(rs)...)
		cmd.Dir = dir
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"}, rn.env(rs)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	type launched struct {
		App               string `json:"app"`
		Inbrowser         bool   `json:"inbrowser"`
		Share             *bool  `json:"share"`
		Auth              any    `json:"auth"`
		ServerName        string `json:"server_name"`
		ServerPort        int    `json:"server_port"`
		PreventThreadLock bool   `json:"prevent_thread_lock"`
		RootPath          string `json:"root_path"`
		SSRMode           *bool  `json:"ssr_mode"`
		TempDir           string `json:"temp_dir"`
	}
	for _, tt := range []struct {
		file, object, app string
		auth              any
	}{
		{"launches.py", "", "launches", []any{"u", "p"}},
		{"positional.py", "", "positional", nil},
		{"guarded.py", "", "guarded", nil},
		{"nolaunch.py", "", "app", nil},
		{"named.py", "ui", "ui", nil},
		{"named.py", "", "demo", nil},
		{"onlyone.py", "", "page", nil},
	} {
		out, err := run(tt.file, tt.object)
		var got launched
		if err != nil || json.Unmarshal([]byte(out), &got) != nil {
			t.Errorf("%s:%s: %v\n%s", tt.file, tt.object, err, out)
			continue
		}
		if got.App != tt.app || got.ServerName != "127.0.0.1" || got.ServerPort != 8123 || got.RootPath != "/content/g" ||
			got.Share == nil || *got.Share || got.Inbrowser || got.PreventThreadLock || got.SSRMode == nil || *got.SSRMode ||
			got.TempDir != filepath.Join(dir, ".gradio-tmp") {
			t.Errorf("%s:%s launched %+v", tt.file, tt.object, got)
		}
		if gotAuth, _ := json.Marshal(got.Auth); string(gotAuth) != mustJSON(t, tt.auth) {
			t.Errorf("%s:%s auth %s, want %s", tt.file, tt.object, gotAuth, mustJSON(t, tt.auth))
		}
	}
	for _, tt := range []struct{ file, object, want string }{
		{"two.py", "", "two.py does not launch a Gradio app and has no Blocks named demo or app"},
		{"named.py", "missing", "named.py does not launch a Gradio app and has no Blocks named missing"},
		{"none.py", "", "none.py does not launch a Gradio app"},
		{"twolaunches.py", "", "the app launches a second Gradio app"},
	} {
		out, err := run(tt.file, tt.object)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("%s:%s: %v, output %q, want a failure saying %q", tt.file, tt.object, err, out, tt.want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBuildEnviron: index and wheel-directory settings of the host's pip
// and uv do not reach environment builds; the rest of the environment does.
func TestBuildEnviron(t *testing.T) {
	in := []string{"PATH=/usr/bin", "PIP_INDEX_URL=http://elsewhere/simple", "PIP_FIND_LINKS=/opt/wheels",
		"UV_EXTRA_INDEX_URL=http://x/", "UV_INDEX=y", "PIP_CERT=/etc/ssl/c.pem", "HTTPS_PROXY=http://proxy:3128", "INDEX_URL=kept"}
	got := strings.Join(buildEnviron(in), " ")
	if got != "PATH=/usr/bin PIP_CERT=/etc/ssl/c.pem HTTPS_PROXY=http://proxy:3128 INDEX_URL=kept" {
		t.Fatalf("buildEnviron = %q", got)
	}
}
