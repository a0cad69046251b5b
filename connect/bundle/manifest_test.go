package bundle

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseManifestRsconnect reads the manifests rsconnect-python's
// write-manifest produced for the sample apps (testdata/gen.sh) and checks
// them against the files beside them.
func TestParseManifestRsconnect(t *testing.T) {
	tests := []struct {
		app            string
		mode           AppMode
		module, object string
		file           string
	}{
		{"fastapi", ModeFastAPI, "app", "app", "app.py"},
		{"flask", ModePythonAPI, "app", "", "app.py"},
		{"pkgapi", ModePythonAPI, "pkg.server", "application", "pkg/server.py"},
		{"streamlit", ModeStreamlit, "app", "", "app.py"},
		{"dash", ModeDash, "app", "", "app.py"},
		{"bokeh", ModeBokeh, "main", "", "main.py"},
		{"shiny", ModePythonShiny, "app", "", "app.py"},
		{"gradio", ModeGradio, "app", "", "app.py"},
		{"panel", ModePanel, "app", "", "app.py"},
		{"notebook", ModeJupyter, "", "", "hello.ipynb"},
		{"voila", ModeVoila, "", "", "hello.ipynb"},
		{"html", ModeStatic, "", "", "index.html"},
	}
	for _, tt := range tests {
		t.Run(tt.app, func(t *testing.T) {
			dir := filepath.Join("testdata", "apps", tt.app)
			data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseManifest(data)
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			if m.Metadata.AppMode != tt.mode {
				t.Errorf("appmode = %q, want %q", m.Metadata.AppMode, tt.mode)
			}
			if m.Entry.Module != tt.module || m.Entry.Object != tt.object {
				t.Errorf("entry = %s:%s, want %s:%s", m.Entry.Module, m.Entry.Object, tt.module, tt.object)
			}
			if tt.mode.IsPython() && (m.Python == nil || m.Python.PackageManager.PackageFile != "requirements.txt") {
				t.Errorf("python = %+v, want package_file requirements.txt", m.Python)
			}
			if len(m.Files) == 0 {
				t.Error("files is empty")
			}
			if err := m.Resolve(func(name string) bool { return fileExists(filepath.Join(dir, name)) }); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Entry.File != tt.file {
				t.Errorf("entry file = %q, want %q", m.Entry.File, tt.file)
			}
		})
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// TestParseManifestShapes reads hand-written manifests in the shapes of
// other clients (testdata/manifests/README.md).
func TestParseManifestShapes(t *testing.T) {
	tests := []struct {
		file  string
		mode  AppMode
		files []string // bundle contents Resolve sees
		entry Entrypoint
		check func(t *testing.T, m Manifest)
	}{
		{"r-shiny.json", ModeShiny, []string{"server.R", "ui.R"}, Entrypoint{File: "server.R"}, func(t *testing.T, m Manifest) {
			if m.Platform != "4.3.2" || m.Packages["shiny"].Description["Version"] != "1.8.0" || m.Metadata.PrimaryRmd != "" {
				t.Errorf("R fields: %+v", m)
			}
		}},
		{"static-nulls.json", ModeStatic, []string{"index.html"}, Entrypoint{File: "index.html"}, func(t *testing.T, m Manifest) {
			if m.Version != 0 || m.Packages != nil {
				t.Errorf("version %d packages %v", m.Version, m.Packages)
			}
		}},
		{"quarto-static.json", ModeQuartoStatic, []string{"report.qmd"}, Entrypoint{}, func(t *testing.T, m Manifest) {
			if m.Quarto == nil || m.Quarto.Version != "1.4.550" || len(m.Quarto.Engines) != 1 {
				t.Errorf("quarto = %+v", m.Quarto)
			}
		}},
		{"quarto-python.json", ModeQuartoStatic, []string{"_quarto.yml", "index.qmd", "requirements.txt"}, Entrypoint{}, func(t *testing.T, m Manifest) {
			if m.Metadata.ContentCategory != "site" || m.Jupyter == nil || !m.Jupyter.HideAllInput {
				t.Errorf("metadata %+v jupyter %+v", m.Metadata, m.Jupyter)
			}
		}},
		{"publisher-quarto.json", ModeQuartoStatic, []string{"report.qmd"}, Entrypoint{File: "report.qmd"}, nil},
		{"shiny-express.json", ModePythonShiny, []string{"requirements.txt", "my_app.py"},
			Entrypoint{Module: "shiny.express.app", Object: "my_5f_app_2e_py", File: "my_app.py"}, nil},
		{"uv-lock.json", ModeFastAPI, []string{"requirements.txt.lock", "api/__init__.py", "api/main.py"},
			Entrypoint{Module: "api.main", Object: "app", File: "api/main.py"}, func(t *testing.T, m Manifest) {
				if m.Environment.Python.Requires != ">=3.10" || m.Python.PackageManager.Name != "uv" || !*m.Python.PackageManager.AllowUV {
					t.Errorf("environment %+v python %+v", m.Environment, m.Python.PackageManager)
				}
			}},
		{"unmanaged-python.json", ModeStreamlit, []string{"dashboard.py"}, Entrypoint{Module: "dashboard", File: "dashboard.py"}, nil},
		{"nodejs.json", ModeNode, []string{"app.js", "package.json"}, Entrypoint{File: "app.js"}, nil},
		{"tensorflow.json", ModeTensorFlow, []string{"1/saved_model.pb"}, Entrypoint{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "manifests", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseManifest(data)
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			if m.Metadata.AppMode != tt.mode {
				t.Errorf("appmode = %q, want %q", m.Metadata.AppMode, tt.mode)
			}
			if err := m.Resolve(setOf(tt.files...)); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Entry != tt.entry {
				t.Errorf("entry = %+v, want %+v", m.Entry, tt.entry)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func setOf(names ...string) func(string) bool {
	s := map[string]bool{}
	for _, n := range names {
		s[n] = true
	}
	return func(n string) bool { return s[n] }
}

// py is a minimal valid Python manifest around metadata.
func py(metadata string) string {
	return `{"version":1,"metadata":` + metadata + `,"python":{"version":"3.12.4","package_manager":{"name":"pip","package_file":"requirements.txt"}}}`
}

func TestParseManifestEntrypoints(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		files []string
		want  Entrypoint
	}{
		{"module only", py(`{"appmode":"python-api","entrypoint":"app"}`), []string{"app.py"}, Entrypoint{Module: "app", File: "app.py"}},
		{"default is app", py(`{"appmode":"python-api"}`), []string{"app.py"}, Entrypoint{Module: "app", File: "app.py"}},
		{"null entrypoint is app", py(`{"appmode":"python-fastapi","entrypoint":null}`), []string{"app.py"}, Entrypoint{Module: "app", File: "app.py"}},
		{"package module", py(`{"appmode":"python-api","entrypoint":"pkg.__connect__:app"}`), []string{"pkg/__connect__/__init__.py"},
			Entrypoint{Module: "pkg.__connect__", Object: "app", File: "pkg/__connect__/__init__.py"}},
		{"dotted object", py(`{"appmode":"python-dash","entrypoint":"app:dash_app.server"}`), []string{"app.py"},
			Entrypoint{Module: "app", Object: "dash_app.server", File: "app.py"}},
		{"file form", py(`{"appmode":"python-fastapi","entrypoint":"src/main.py"}`), []string{"src/main.py"},
			Entrypoint{Module: "src.main", File: "src/main.py"}},
		{"streamlit file", py(`{"appmode":"python-streamlit","entrypoint":"./streamlit_app.py"}`), []string{"streamlit_app.py"},
			Entrypoint{Module: "streamlit_app", File: "streamlit_app.py"}},
		{"streamlit dashed name", py(`{"appmode":"python-streamlit","entrypoint":"my-app"}`), []string{"my-app.py"},
			Entrypoint{File: "my-app.py"}},
		{"panel notebook", py(`{"appmode":"python-panel","entrypoint":"dash.ipynb"}`), []string{"dash.ipynb"},
			Entrypoint{File: "dash.ipynb"}},
		{"gradio object", py(`{"appmode":"python-gradio","entrypoint":"app:demo"}`), []string{"app.py"},
			Entrypoint{Module: "app", Object: "demo", File: "app.py"}},
		{"plumber default", `{"metadata":{"appmode":"api"}}`, []string{"plumber.R"}, Entrypoint{File: "plumber.R"}},
		{"plumber entrypoint.R", `{"metadata":{"appmode":"api"}}`, []string{"entrypoint.R"}, Entrypoint{File: "entrypoint.R"}},
		{"shiny app.R", `{"metadata":{"appmode":"shiny"}}`, []string{"app.R"}, Entrypoint{File: "app.R"}},
		{"rmd primary", `{"metadata":{"appmode":"rmd-static","primary_rmd":"report.Rmd"}}`, []string{"report.Rmd"}, Entrypoint{File: "report.Rmd"}},
		{"rmd site", `{"metadata":{"appmode":"rmd-static","content_category":"site"}}`, nil, Entrypoint{}},
		{"voila multi", py(`{"appmode":"jupyter-voila","entrypoint":""}`), []string{"requirements.txt"}, Entrypoint{}},
		{"quarto-shiny", `{"metadata":{"appmode":"quarto-shiny"},"quarto":{"version":"1.4","engines":["knitr"]}}`, nil, Entrypoint{}},
		{"bom", "\ufeff" + `{"metadata":{"appmode":"static"}}`, nil, Entrypoint{}},
		{"unknown keys", `{"metadata":{"appmode":"static","future":{"x":[1,2]}},"users":null,"extra":true}`, nil, Entrypoint{}},
		{"nodejs-api alias", `{"metadata":{"appmode":"nodejs-api","entrypoint":"index.js"}}`, []string{"index.js"}, Entrypoint{File: "index.js"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.json))
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			files := append([]string{"requirements.txt"}, tt.files...)
			if err := m.Resolve(setOf(files...)); err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Entry != tt.want {
				t.Errorf("entry = %+v, want %+v", m.Entry, tt.want)
			}
		})
	}
}

func TestParseManifestInvalid(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string // substring of the message
	}{
		{"empty", ``, "manifest.json is empty"},
		{"not json", `{"metadata":`, "manifest.json is not valid JSON"},
		{"array", `[1,2]`, "manifest.json must be a JSON object, not an array"},
		{"trailing garbage", `{"metadata":{"appmode":"static"}} x`, "not valid JSON"},
		{"wrong type", `{"metadata":{"appmode":3}}`, "manifest.json: metadata.appmode must be a string, not a number"},
		{"wrong version type", `{"version":"1","metadata":{"appmode":"static"}}`, "version must be a whole number, not a string"},
		{"version 2", `{"version":2,"metadata":{"appmode":"static"}}`, "version 2 is not supported"},
		{"no metadata", `{"version":1}`, "metadata.appmode is missing"},
		{"null", `null`, "metadata.appmode is missing"},
		{"flask", py(`{"appmode":"python-flask","entrypoint":"app"}`),
			`manifest.json: metadata.appmode "python-flask" is not a Connect app mode (Flask apps are python-api)`},
		{"plumber", `{"metadata":{"appmode":"plumber"}}`, `"plumber" is not a Connect app mode (Plumber APIs are api)`},
		{"upper case", `{"metadata":{"appmode":"Python-API"}}`, "app modes are lower case: python-api"},
		{"unknown mode", `{"metadata":{"appmode":"cobol-batch"}}`, `"cobol-batch" is not a Connect app mode (one of api, jupyter-static,`},
		{"mode 0", `{"metadata":{"appmode":"unknown"}}`, `"unknown" is not a Connect app mode`},
		{"no package file", `{"metadata":{"appmode":"python-fastapi","entrypoint":"app:app"},"python":{"version":"3.12"}}`,
			"python.package_manager.package_file is missing; python-fastapi content is installed from a requirements file"},
		{"no python section", `{"metadata":{"appmode":"jupyter-static","entrypoint":"a.ipynb"}}`, "python.package_manager.package_file is missing"},
		{"package file escapes", `{"metadata":{"appmode":"python-api"},"python":{"package_manager":{"package_file":"../reqs.txt"}}}`,
			`python.package_manager.package_file "../reqs.txt" must be a relative path inside the bundle`},
		{"absolute entrypoint", py(`{"appmode":"python-streamlit","entrypoint":"/etc/passwd.py"}`), `metadata.entrypoint "/etc/passwd.py" must be a relative path`},
		{"primary_html escapes", `{"metadata":{"appmode":"static","primary_html":"../../index.html"}}`, `metadata.primary_html "../../index.html" must be a relative path`},
		{"three colons", py(`{"appmode":"python-api","entrypoint":"a:b:c"}`), `"a:b:c" is not in module:object form`},
		{"bad module", py(`{"appmode":"python-fastapi","entrypoint":"my-app:app"}`), `"my-app:app" is not in module:object form`},
		{"bad import name", py(`{"appmode":"python-api","entrypoint":"my-app"}`), `"my-app" is not in module:object form`},
		{"file not importable", py(`{"appmode":"python-api","entrypoint":"my-app.py"}`), `"my-app.py" is not importable; python-api needs module or module:object`},
		{"object for script", py(`{"appmode":"python-streamlit","entrypoint":"app:app"}`),
			`metadata.entrypoint "app:app" names an object, but python-streamlit runs a script`},
		{"notebook missing", py(`{"appmode":"jupyter-static"}`), "metadata.entrypoint is missing; jupyter-static content names the notebook"},
		{"bad express escape", py(`{"appmode":"python-shiny","entrypoint":"shiny.express.app:app_zz_py"}`), "does not name a Shiny Express app file"},
		{"express escapes", py(`{"appmode":"python-shiny","entrypoint":"shiny.express.app:_2e__2e__2f_x_2e_py"}`), `must be a relative path inside the bundle`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseManifest([]byte(tt.json))
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("err = %v (%T), want *InvalidError", err, err)
			}
			if !strings.Contains(inv.Msg, tt.want) {
				t.Errorf("message %q\n does not contain %q", inv.Msg, tt.want)
			}
		})
	}
}

func TestResolveMissing(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		files []string
		want  string
	}{
		{"module", py(`{"appmode":"python-fastapi","entrypoint":"main:app"}`), []string{"requirements.txt", "app.py"},
			`metadata.entrypoint "main:app" needs "main.py" or "main/__init__.py" in the bundle, and it is not there`},
		{"requirements", py(`{"appmode":"python-api","entrypoint":"app"}`), []string{"app.py"},
			`python.package_manager.package_file "requirements.txt" needs "requirements.txt" in the bundle`},
		{"script", py(`{"appmode":"python-streamlit","entrypoint":"app"}`), []string{"requirements.txt", "main.py"}, `needs "app.py" or "app/__init__.py"`},
		{"notebook", py(`{"appmode":"jupyter-static","entrypoint":"nb.ipynb"}`), []string{"requirements.txt"}, `"nb.ipynb"`},
		{"shiny R", `{"metadata":{"appmode":"shiny"}}`, []string{"global.R"}, `needs "app.R" or "server.R"`},
		{"static", `{"metadata":{"appmode":"static","primary_html":"index.html"}}`, []string{"other.html"}, `metadata.primary_html "index.html"`},
		{"node package", `{"metadata":{"appmode":"nodejs","entrypoint":"app.js"},"node":{"package_manager":{"package_file":"package.json"}}}`,
			[]string{"app.js"}, `node.package_manager.package_file "package.json"`},
		{"quarto python", `{"metadata":{"appmode":"quarto-static"},"python":{"package_manager":{"package_file":"requirements.txt"}}}`,
			[]string{"index.qmd"}, `python.package_manager.package_file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tt.json))
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			err = m.Resolve(setOf(tt.files...))
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("err = %v, want *InvalidError", err)
			}
			if !strings.Contains(inv.Msg, tt.want) {
				t.Errorf("message %q\n does not contain %q", inv.Msg, tt.want)
			}
		})
	}
}

func TestAppModes(t *testing.T) {
	// The v0 numbers rsconnect-python models.py AppModes uses.
	want := map[AppMode]int{
		"shiny": 1, "rmd-shiny": 2, "rmd-static": 3, "static": 4, "api": 5,
		"tensorflow-saved-model": 6, "jupyter-static": 7, "python-api": 8,
		"python-dash": 9, "python-streamlit": 10, "python-bokeh": 11,
		"python-fastapi": 12, "quarto-shiny": 13, "quarto-static": 14,
		"python-shiny": 15, "jupyter-voila": 16, "python-gradio": 17,
		"python-panel": 18, "nodejs": 20, "nodejs-api": 20,
	}
	if got := len(AppModes()); got != len(want) {
		t.Errorf("%d modes, want %d", got, len(want))
	}
	for m, n := range want {
		if !m.Known() || m.Number() != n {
			t.Errorf("%s: known %v number %d, want %d", m, m.Known(), m.Number(), n)
		}
	}
	for _, m := range []AppMode{"unknown", "python-flask", ""} {
		if m.Known() {
			t.Errorf("%q is known", m)
		}
	}
}

func TestUnescapeVarName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"app_2e_py", "app.py"},
		{"my_5f_app_2e_py", "my_app.py"},
		{"_31_app_2e_py", "1app.py"},
		{"sub_2f_app_2e_py", "sub/app.py"},
		{"caf_e9__2e_py", "café.py"},
	}
	for _, tt := range tests {
		got, err := unescapeVarName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("unescapeVarName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"a_", "a__b", "a_zz_", "a_0_", "a_1234567_"} {
		if got, err := unescapeVarName(bad); err == nil {
			t.Errorf("unescapeVarName(%q) = %q, want error", bad, got)
		}
	}
}
