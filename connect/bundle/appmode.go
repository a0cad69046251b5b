package bundle

import (
	"slices"
	"strings"
)

// AppMode is the kind of content, as manifest.json's metadata.appmode and the
// v1 API's app_mode spell it.
type AppMode string

// The app modes Connect deploys (rsconnect-python models.py AppModes).
const (
	ModeShiny        AppMode = "shiny"      // R Shiny app
	ModeRmdShiny     AppMode = "rmd-shiny"  // R Markdown with a Shiny runtime
	ModeRmdStatic    AppMode = "rmd-static" // R Markdown rendered at deploy
	ModeStatic       AppMode = "static"     // HTML served as is
	ModePlumber      AppMode = "api"        // R Plumber API
	ModeTensorFlow   AppMode = "tensorflow-saved-model"
	ModeJupyter      AppMode = "jupyter-static" // notebook rendered at deploy
	ModePythonAPI    AppMode = "python-api"     // WSGI: Flask and friends
	ModeDash         AppMode = "python-dash"
	ModeStreamlit    AppMode = "python-streamlit"
	ModeBokeh        AppMode = "python-bokeh"
	ModeFastAPI      AppMode = "python-fastapi" // ASGI: FastAPI, Quart, Sanic…
	ModeQuartoShiny  AppMode = "quarto-shiny"
	ModeQuartoStatic AppMode = "quarto-static"
	ModePythonShiny  AppMode = "python-shiny"
	ModeVoila        AppMode = "jupyter-voila"
	ModeGradio       AppMode = "python-gradio"
	ModePanel        AppMode = "python-panel"
	ModeNode         AppMode = "nodejs"
	// ModeNodeAPI is the older name some clients send for ModeNode.
	ModeNodeAPI AppMode = "nodejs-api"
)

// appModeNumbers are the v0 API's integer app_mode values. 0 ("unknown") is
// deliberately absent: it names no runnable content, so a manifest cannot
// use it.
var appModeNumbers = map[AppMode]int{
	ModeShiny: 1, ModeRmdShiny: 2, ModeRmdStatic: 3, ModeStatic: 4,
	ModePlumber: 5, ModeTensorFlow: 6, ModeJupyter: 7, ModePythonAPI: 8,
	ModeDash: 9, ModeStreamlit: 10, ModeBokeh: 11, ModeFastAPI: 12,
	ModeQuartoShiny: 13, ModeQuartoStatic: 14, ModePythonShiny: 15,
	ModeVoila: 16, ModeGradio: 17, ModePanel: 18, ModeNode: 20, ModeNodeAPI: 20,
}

// Known reports whether m is an app mode Connect deploys.
func (m AppMode) Known() bool { _, ok := appModeNumbers[m]; return ok }

// Number is the v0 API's integer for m, or 0 when m is not Known.
func (m AppMode) Number() int { return appModeNumbers[m] }

// IsPython reports whether m runs in a Python environment that Connect
// builds from the bundle's requirements file. Quarto content may use Python
// too, but only when its manifest has a python section, so it is not counted.
func (m AppMode) IsPython() bool {
	return strings.HasPrefix(string(m), "python-") || m == ModeJupyter || m == ModeVoila
}

// IsR reports whether m runs R content (its packages come from the
// manifest's packages section rather than a requirements file).
func (m AppMode) IsR() bool {
	return m == ModeShiny || m == ModeRmdShiny || m == ModeRmdStatic || m == ModePlumber
}

// AppModes lists the modes a manifest may name, sorted.
func AppModes() []AppMode {
	out := make([]AppMode, 0, len(appModeNumbers))
	for m := range appModeNumbers {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// modeHints point the names people (and other tools' CLIs) use for content
// at the mode Connect knows it by: rsconnect's deploy subcommands are named
// after frameworks, Connect's modes after how content runs.
var modeHints = map[string]string{
	"flask":           "Flask apps are python-api",
	"python-flask":    "Flask apps are python-api",
	"wsgi":            "WSGI apps are python-api",
	"python-wsgi":     "WSGI apps are python-api",
	"fastapi":         "FastAPI apps are python-fastapi",
	"asgi":            "ASGI apps are python-fastapi",
	"python-asgi":     "ASGI apps are python-fastapi",
	"dash":            "Dash apps are python-dash",
	"streamlit":       "Streamlit apps are python-streamlit",
	"bokeh":           "Bokeh apps are python-bokeh",
	"gradio":          "Gradio apps are python-gradio",
	"panel":           "Panel apps are python-panel",
	"voila":           "Voilà apps are jupyter-voila",
	"notebook":        "rendered notebooks are jupyter-static",
	"jupyter":         "rendered notebooks are jupyter-static",
	"quarto":          "Quarto documents are quarto-static, or quarto-shiny with a Shiny runtime",
	"html":            "HTML sites are static",
	"plumber":         "Plumber APIs are api",
	"r-api":           "Plumber APIs are api",
	"rmarkdown":       "R Markdown is rmd-static, or rmd-shiny with a Shiny runtime",
	"tensorflow":      "TensorFlow models are tensorflow-saved-model",
	"node":            "Node.js apps are nodejs",
	"python-node":     "Node.js apps are nodejs",
	"unknown":         "the manifest must say what the content is",
	"python-notebook": "rendered notebooks are jupyter-static",
}

// modeHint says which mode the publisher probably meant by s, or lists them.
func modeHint(s string) string {
	if h, ok := modeHints[strings.ToLower(s)]; ok {
		return h
	}
	if low := AppMode(strings.ToLower(strings.TrimSpace(s))); low.Known() {
		return "app modes are lower case: " + string(low)
	}
	names := make([]string, 0, len(appModeNumbers))
	for _, m := range AppModes() {
		names = append(names, string(m))
	}
	return "one of " + strings.Join(names, ", ")
}
