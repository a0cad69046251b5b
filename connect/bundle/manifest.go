package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
)

// Manifest is manifest.json as rsconnect-python, the R rsconnect package and
// Posit Publisher write it (rsconnect-python bundle.py ManifestData). Keys
// this type does not name, such as "users", are ignored, and null reads as
// the zero value, because older clients write both.
type Manifest struct {
	// Version is always 1 when present; some old manifests omit it.
	Version  int      `json:"version,omitempty"`
	Locale   string   `json:"locale,omitempty"`
	Metadata Metadata `json:"metadata"`
	Python   *Python  `json:"python,omitempty"`
	Quarto   *Quarto  `json:"quarto,omitempty"`
	Jupyter  *Jupyter `json:"jupyter,omitempty"`
	// Environment carries the target image and whether Connect should
	// build environments at all.
	Environment *Environment `json:"environment,omitempty"`
	Node        *Node        `json:"node,omitempty"`
	// Platform is the R version, for R content.
	Platform string `json:"platform,omitempty"`
	// Packages are the R packages the content needs, by name.
	Packages map[string]RPackage `json:"packages,omitempty"`
	// Files lists the bundle's files with their MD5s. It is not
	// authoritative: rsconnect's static-notebook bundles have "files":{}
	// while carrying the HTML, so nothing here checks the bundle against it.
	Files map[string]FileInfo `json:"files,omitempty"`

	// Entry is how to start the content, worked out from the app mode and
	// metadata.entrypoint by ParseManifest; Entry.File is filled in by
	// Resolve (and so by Extract and Inspect).
	Entry Entrypoint `json:"-"`

	// needs are the files the manifest names that the bundle must hold.
	needs []need
}

// Metadata is manifest.json's "metadata".
type Metadata struct {
	AppMode AppMode `json:"appmode"`
	// Entrypoint is "module" or "module:object" for Python APIs, a file or
	// module name for script-run apps, a notebook, or empty (Quarto).
	Entrypoint  string `json:"entrypoint,omitempty"`
	PrimaryRmd  string `json:"primary_rmd,omitempty"`
	PrimaryHTML string `json:"primary_html,omitempty"`
	// ContentCategory is "site" for multi-document Quarto and R Markdown.
	ContentCategory string `json:"content_category,omitempty"`
	HasParameters   bool   `json:"has_parameters,omitempty"`
}

// Python is manifest.json's "python": the interpreter the publisher used and
// how to install the packages.
type Python struct {
	Version        string          `json:"version,omitempty"`
	PackageManager *PackageManager `json:"package_manager,omitempty"`
}

// PackageManager names the installer and the file it installs from
// (requirements.txt, requirements.txt.lock, package.json).
type PackageManager struct {
	Name        string `json:"name,omitempty"`
	Version     string `json:"version,omitempty"`
	PackageFile string `json:"package_file,omitempty"`
	AllowUV     *bool  `json:"allow_uv,omitempty"`
}

// Quarto is manifest.json's "quarto".
type Quarto struct {
	Version string   `json:"version,omitempty"`
	Engines []string `json:"engines,omitempty"`
}

// Jupyter is manifest.json's "jupyter": rendering options for notebooks.
type Jupyter struct {
	HideAllInput    bool `json:"hide_all_input,omitempty"`
	HideTaggedInput bool `json:"hide_tagged_input,omitempty"`
}

// Environment is manifest.json's "environment".
type Environment struct {
	Image                 string                 `json:"image,omitempty"`
	EnvironmentManagement *EnvironmentManagement `json:"environment_management,omitempty"`
	Python                *PythonRequirement     `json:"python,omitempty"`
}

// EnvironmentManagement says, per language, whether Connect builds the
// environment (nil: the server's default) or an administrator provides it
// (false).
type EnvironmentManagement struct {
	Python *bool `json:"python,omitempty"`
	R      *bool `json:"r,omitempty"`
	Node   *bool `json:"node,omitempty"`
}

// PythonRequirement is the pyproject-style interpreter constraint.
type PythonRequirement struct {
	Requires string `json:"requires,omitempty"`
}

// Node is manifest.json's "node".
type Node struct {
	Version        string          `json:"version,omitempty"`
	PackageManager *PackageManager `json:"package_manager,omitempty"`
}

// RPackage is one entry of an R manifest's "packages".
type RPackage struct {
	Source      string            `json:"Source,omitempty"`
	Repository  string            `json:"Repository,omitempty"`
	Description map[string]string `json:"description,omitempty"`
}

// FileInfo is one entry of manifest.json's "files".
type FileInfo struct {
	Checksum string `json:"checksum,omitempty"`
}

// Entrypoint is how the runtime starts the content.
type Entrypoint struct {
	// Module and Object are the Python import target: "pkg.server" and
	// "application" for "pkg.server:application". Object is empty when the
	// manifest names only a module; for python-api the runtime then tries
	// app, application, create_app and make_app in that order (rsconnect
	// bundle.py validate_entry_point).
	Module string
	Object string
	// File is the bundle file the entrypoint names ("app.py",
	// "pkg/server/__init__.py", "hello.ipynb", "app.R"), set by Resolve;
	// empty for content that has none (Quarto projects, TensorFlow models,
	// multi-notebook Voilà).
	File string
}

// need is a file the manifest refers to: one of candidates must be in the
// bundle.
type need struct {
	field      string   // "metadata.entrypoint"
	value      string   // as the manifest spells it
	candidates []string // bundle paths, any one of which satisfies it
	why        string   // what to say when none is there
	entry      bool     // the found candidate becomes Entry.File
}

// maxManifestSize bounds the manifest read from a bundle. R manifests carry
// every package's DESCRIPTION and reach a few hundred KiB; nothing real is
// near this.
const maxManifestSize = 16 << 20

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// ParseManifest parses and validates manifest.json: that it is JSON, that
// metadata.appmode is a mode Connect deploys, that the entrypoint has the
// form the mode needs, that Python content names its requirements file and
// that every path it names stays inside the bundle. Whether those files are
// in the bundle is Resolve's job. Every rejection is an *InvalidError.
func ParseManifest(data []byte) (Manifest, error) {
	var m Manifest
	// Editors on Windows add a byte-order mark; JSON parsers in Python
	// (utf-8-sig) and R accept it, so Connect should too.
	data = bytes.TrimPrefix(data, utf8BOM)
	if len(bytes.TrimSpace(data)) == 0 {
		return m, invalidf("manifest.json is empty")
	}
	if len(data) > maxManifestSize {
		return m, tooLargef("manifest.json is larger than %d MiB", maxManifestSize>>20)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, jsonError(err)
	}
	if err := m.validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// jsonError turns a decoding error into a message naming the offending key.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return &InvalidError{Msg: fmt.Sprintf("manifest.json must be a JSON object, not %s", jsonValue(typeErr.Value)), Err: err}
		}
		return &InvalidError{Msg: fmt.Sprintf("manifest.json: %s must be %s, not %s",
			typeErr.Field, goTypeName(typeErr.Type), jsonValue(typeErr.Value)), Err: err}
	}
	return &InvalidError{Msg: "manifest.json is not valid JSON: " + err.Error(), Err: err}
}

// jsonValue names the kind of JSON value encoding/json reports ("string",
// "number 1.5", "array") with an article.
func jsonValue(v string) string {
	if strings.HasPrefix(v, "object") || strings.HasPrefix(v, "array") {
		return "an " + v
	}
	return "a " + v
}

func goTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return "a " + t.String()
}

func (m *Manifest) validate() error {
	if m.Version != 0 && m.Version != 1 {
		return invalidf("manifest.json: version %d is not supported (Connect reads version 1)", m.Version)
	}
	mode := m.Metadata.AppMode
	if mode == "" {
		return invalidf("manifest.json: metadata.appmode is missing; it says what the content is (rsconnect write-manifest sets it)")
	}
	if !mode.Known() {
		return invalidf("manifest.json: metadata.appmode %q is not a Connect app mode (%s)", mode, modeHint(string(mode)))
	}

	var err error
	if m.Entry, m.needs, err = parseEntrypoint(mode, m.Metadata); err != nil {
		return err
	}

	pyFile := ""
	if m.Python != nil && m.Python.PackageManager != nil {
		pyFile = m.Python.PackageManager.PackageFile
	}
	if pyFile == "" && mode.IsPython() && m.managesPython() {
		return invalidf("manifest.json: python.package_manager.package_file is missing; %s content is installed from a requirements file (usually requirements.txt) that the manifest must name", mode)
	}
	if pyFile != "" {
		p, err := cleanRef("python.package_manager.package_file", pyFile)
		if err != nil {
			return err
		}
		m.needs = append(m.needs, need{
			field: "python.package_manager.package_file", value: pyFile, candidates: []string{p},
			why: "Connect installs the content's Python packages from it",
		})
	}
	if m.Node != nil && m.Node.PackageManager != nil && m.Node.PackageManager.PackageFile != "" {
		f := m.Node.PackageManager.PackageFile
		p, err := cleanRef("node.package_manager.package_file", f)
		if err != nil {
			return err
		}
		m.needs = append(m.needs, need{
			field: "node.package_manager.package_file", value: f, candidates: []string{p},
			why: "Connect installs the content's Node.js packages from it",
		})
	}
	return nil
}

// managesPython is false when the publisher said an administrator provides
// the Python environment: then Connect installs nothing and needs no
// requirements file.
func (m *Manifest) managesPython() bool {
	e := m.Environment
	return e == nil || e.EnvironmentManagement == nil || e.EnvironmentManagement.Python == nil || *e.EnvironmentManagement.Python
}

// Resolve checks that every file the manifest names (entrypoint, primary
// document, requirements file) is in the bundle, where exists reports
// whether a bundle path is a regular file, and sets Entry.File. It is an
// *InvalidError naming the field when one is missing.
func (m *Manifest) Resolve(exists func(name string) bool) error {
	for _, n := range m.needs {
		found := ""
		for _, c := range n.candidates {
			if exists(c) {
				found = c
				break
			}
		}
		if found == "" {
			return invalidf("bundle: manifest.json %s %q needs %s in the bundle, and it is not there; %s",
				n.field, n.value, orList(n.candidates), n.why)
		}
		if n.entry {
			m.Entry.File = found
		}
	}
	return nil
}

func orList(c []string) string {
	q := make([]string, len(c))
	for i, s := range c {
		q[i] = fmt.Sprintf("%q", s)
	}
	switch len(q) {
	case 1:
		return q[0]
	case 2:
		return q[0] + " or " + q[1]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// How each Python mode's entrypoint is read. Import modes are loaded by a
// WSGI/ASGI server, so the entrypoint must be importable; script modes are
// run by path (streamlit run, bokeh serve, panel serve), so any file name
// works but an object does not; shiny and gradio accept either.
type pyKind int

const (
	pyImport pyKind = iota
	pyScript
	pyEither
)

var pyKinds = map[AppMode]pyKind{
	ModePythonAPI: pyImport, ModeFastAPI: pyImport, ModeDash: pyImport,
	ModeStreamlit: pyScript, ModeBokeh: pyScript, ModePanel: pyScript,
	ModePythonShiny: pyEither, ModeGradio: pyEither,
}

// defaultPythonEntrypoint is what rsconnect assumes when none is given
// (bundle.py get_default_entrypoint falls back to "app").
const defaultPythonEntrypoint = "app"

// shinyExpressModule is the module Connect runs Shiny Express apps through;
// the object names the app file, escaped (rsconnect shiny_express.py).
const shinyExpressModule = "shiny.express.app"

func parseEntrypoint(mode AppMode, md Metadata) (Entrypoint, []need, error) {
	const field = "metadata.entrypoint"
	ep := md.Entrypoint
	if kind, ok := pyKinds[mode]; ok {
		return parsePythonEntrypoint(mode, kind, ep)
	}
	var e Entrypoint
	fileNeed := func(field, value string, candidates ...string) []need {
		return []need{{field: field, value: value, candidates: candidates, entry: true, why: "it is what Connect runs"}}
	}
	switch mode {
	case ModeJupyter:
		if ep == "" {
			return e, nil, invalidf("manifest.json: metadata.entrypoint is missing; %s content names the notebook to render", mode)
		}
		p, err := cleanRef(field, ep)
		return e, fileNeed(field, ep, p), err
	case ModeVoila:
		// "" is a multi-notebook Voilà bundle (rsconnect make_voila_bundle).
		if ep == "" {
			return e, nil, nil
		}
		p, err := cleanRef(field, ep)
		return e, fileNeed(field, ep, p), err
	case ModeStatic:
		// primary_html is what is served at the root; rsconnect sets both
		// to the same file, older manifests only primary_html.
		var needs []need
		for _, f := range []struct{ field, value string }{{"metadata.primary_html", md.PrimaryHTML}, {field, ep}} {
			if f.value == "" {
				continue
			}
			p, err := cleanRef(f.field, f.value)
			if err != nil {
				return e, nil, err
			}
			needs = append(needs, fileNeed(f.field, f.value, p)...)
		}
		return e, needs, nil
	case ModeRmdStatic, ModeRmdShiny:
		f, v := "metadata.primary_rmd", md.PrimaryRmd
		if v == "" {
			f, v = field, ep
		}
		if v == "" {
			return e, nil, nil // a site: rmarkdown renders index.Rmd
		}
		p, err := cleanRef(f, v)
		return e, fileNeed(f, v, p), err
	case ModeShiny, ModePlumber:
		if ep != "" {
			p, err := cleanRef(field, ep)
			return e, fileNeed(field, ep, p), err
		}
		// What shiny::runApp and plumber look for in a directory.
		if mode == ModeShiny {
			return e, fileNeed(field, "(none)", "app.R", "server.R"), nil
		}
		return e, fileNeed(field, "(none)", "plumber.R", "entrypoint.R", "_server.yml"), nil
	case ModeQuartoStatic, ModeQuartoShiny, ModeNode, ModeNodeAPI:
		// rsconnect writes no entrypoint for Quarto; Publisher names the
		// document. Node apps name their script.
		if ep == "" {
			return e, nil, nil
		}
		p, err := cleanRef(field, ep)
		return e, fileNeed(field, ep, p), err
	}
	// tensorflow-saved-model: Connect finds the saved model itself.
	return e, nil, nil
}

func parsePythonEntrypoint(mode AppMode, kind pyKind, ep string) (Entrypoint, []need, error) {
	const field = "metadata.entrypoint"
	if ep == "" {
		ep = defaultPythonEntrypoint
	}
	var e Entrypoint
	entryNeed := func(candidates ...string) []need {
		return []need{{field: field, value: ep, candidates: candidates, entry: true, why: "it is what Connect runs"}}
	}

	if mod, obj, ok := strings.Cut(ep, ":"); ok {
		if kind == pyScript {
			return e, nil, invalidf("manifest.json: metadata.entrypoint %q names an object, but %s runs a script: give the file (app.py) or module (app)", ep, mode)
		}
		if mode == ModePythonShiny && mod == shinyExpressModule {
			file, err := unescapeVarName(obj)
			if err != nil {
				return e, nil, invalidf("manifest.json: metadata.entrypoint %q does not name a Shiny Express app file: %v", ep, err)
			}
			p, err := cleanRef(field, file)
			if err != nil {
				return e, nil, err
			}
			return Entrypoint{Module: mod, Object: obj}, entryNeed(p), nil
		}
		if !isDottedIdent(mod) || !isDottedIdent(obj) {
			return e, nil, invalidf("manifest.json: metadata.entrypoint %q is not in module:object form (like app:app or pkg.server:application)", ep)
		}
		return Entrypoint{Module: mod, Object: obj}, entryNeed(moduleFiles(mod)...), nil
	}

	// A file name: what pyproject-based deploys write ("app.py"), and
	// Panel also serves notebooks.
	if strings.HasSuffix(ep, ".py") || strings.Contains(ep, "/") || (mode == ModePanel && strings.HasSuffix(ep, ".ipynb")) {
		p, err := cleanRef(field, ep)
		if err != nil {
			return e, nil, err
		}
		mod := strings.ReplaceAll(strings.TrimSuffix(p, ".py"), "/", ".")
		if !strings.HasSuffix(p, ".py") || !isDottedIdent(mod) {
			if kind == pyImport {
				return e, nil, invalidf("manifest.json: metadata.entrypoint %q is not importable; %s needs module or module:object (like app:app)", ep, mode)
			}
			mod = ""
		}
		return Entrypoint{Module: mod}, entryNeed(p), nil
	}

	// A module name, as rsconnect write-manifest writes it ("app").
	if isDottedIdent(ep) {
		return Entrypoint{Module: ep}, entryNeed(moduleFiles(ep)...), nil
	}
	if kind == pyImport {
		return e, nil, invalidf("manifest.json: metadata.entrypoint %q is not in module:object form (like app:app or pkg.server:application)", ep)
	}
	// Script runners take any file name: "my-app" means my-app.py.
	p, err := cleanRef(field, ep+".py")
	if err != nil {
		return e, nil, err
	}
	return Entrypoint{}, entryNeed(p), nil
}

// moduleFiles are the files an import of mod loads from the bundle root.
func moduleFiles(mod string) []string {
	p := strings.ReplaceAll(mod, ".", "/")
	return []string{p + ".py", p + "/__init__.py"}
}

// isDottedIdent reports whether s is a dotted path of ASCII Python
// identifiers. Non-ASCII identifiers are legal Python but rsconnect's own
// pattern is ASCII, and no client writes them.
func isDottedIdent(s string) bool {
	if s == "" {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" || (part[0] >= '0' && part[0] <= '9') {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// unescapeVarName reverses rsconnect's escape_to_var_name: every "_<hex>_"
// run is one character, and letters and digits stand for themselves.
func unescapeVarName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '_' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '_')
		if end <= 0 || end > 6 {
			return "", fmt.Errorf("bad escape at %q", s[i:])
		}
		var r rune
		for _, h := range s[i+1 : i+1+end] {
			switch {
			case h >= '0' && h <= '9':
				r = r*16 + h - '0'
			case h >= 'a' && h <= 'f':
				r = r*16 + h - 'a' + 10
			case h >= 'A' && h <= 'F':
				r = r*16 + h - 'A' + 10
			default:
				return "", fmt.Errorf("bad escape at %q", s[i:])
			}
		}
		if r == 0 || r > 0x10FFFF {
			return "", fmt.Errorf("bad escape at %q", s[i:])
		}
		b.WriteRune(r)
		i += end + 2
	}
	return b.String(), nil
}

// cleanRef checks that a path the manifest names stays inside the bundle,
// because the runtime joins it to the bundle directory, and returns it
// without a leading "./".
func cleanRef(field, p string) (string, error) {
	clean := strings.TrimPrefix(p, "./")
	if !fs.ValidPath(clean) || clean == "." || strings.ContainsAny(clean, "\\\x00") {
		return "", invalidf("manifest.json: %s %q must be a relative path inside the bundle (like app.py or src/app.py)", field, p)
	}
	return clean, nil
}
