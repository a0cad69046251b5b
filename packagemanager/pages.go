package packagemanager

import (
	"html/template"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/packagemanager/store"
	"github.com/atrium-suite/atrium/shared/ui"
)

var repoListTmpl = template.Must(template.New("repos").Parse(`<h2>Repositories</h2>
{{if .}}<table>
<tr><th>Repository</th><th>Type</th><th>Sources</th></tr>
{{range .}}<tr><td><a href="/{{.Name}}/">{{.Name}}</a></td><td>{{if eq .Type "r"}}R (CRAN){{else}}Python (PyPI){{end}}</td><td>{{range $i, $s := .Sources}}{{if $i}}, {{end}}{{$s.Name}} <span class="muted">({{$s.Type}})</span>{{end}}</td></tr>
{{end}}</table>{{else}}<p class="muted">No repositories yet: <code>atrium pm create repo</code> makes one.</p>{{end}}`))

func (s *Server) repoList(c *gin.Context) (template.HTML, error) {
	repos, err := s.svc.Store.ListRepos(c.Request.Context())
	if err != nil {
		return "", err
	}
	return ui.Fragment(repoListTmpl, repos)
}

var repoTmpl = template.Must(template.New("repo").Parse(`<h1>{{.Repo.Name}}</h1>
<p class="lead">{{if eq .Repo.Type "r"}}A CRAN-style repository for R.{{else}}A PyPI-style repository for pip, uv and twine.{{end}}
Sources, first wins: {{range $i, $s := .Repo.Sources}}{{if $i}}, {{end}}{{$s.Name}} ({{$s.Type}}){{end}}.</p>
<h2>Use it</h2>
{{if eq .Repo.Type "r"}}<pre>options(repos = c(atrium = "{{.URL}}/latest"))
install.packages("PACKAGE")</pre>
<p class="muted">Frozen in time: replace <code>latest</code> with a date (<code>{{.Today}}</code>) or a transaction id.</p>
{{else}}<pre>pip install --index-url {{.URL}}/latest/simple/ PACKAGE
uv pip install --index-url {{.URL}}/latest/simple/ PACKAGE</pre>
<p>For <code>uv add</code>, in <code>pyproject.toml</code>:</p>
<pre>[[tool.uv.index]]
name = "atrium"
url = "{{.URL}}/latest/simple/"
default = true</pre>
{{if .Upload}}<p>Publish with twine; the password is a token from <code>atrium pm create token --sources {{.Upload}}</code> or a publisher's key from <a href="/__auth__/keys">API keys</a>:</p>
<pre>twine upload --repository-url {{.Host}}/upload/{{.Upload}}/ -u __token__ -p KEY dist/*</pre>{{end}}
<p class="muted">Frozen in time: replace <code>latest</code> with a date (<code>{{.Today}}</code>) or a transaction id.</p>
{{end}}
<h2>Packages</h2>
<form method="get"><input name="q" value="{{.Query}}" placeholder="Search by name" aria-label="Search by name"> <button>Search</button></form>
{{if .Packages}}<table>
<tr><th>Package</th><th>Versions</th></tr>
{{range .Packages}}<tr><td>{{.Name}}</td><td>{{.Versions}}</td></tr>
{{end}}</table>{{else}}<p class="muted">{{if .Query}}No package matches “{{.Query}}”.{{else}}No packages yet.{{end}}</p>{{end}}
{{if .Mirror}}<p class="muted">Packages from an upstream mirror appear here once someone has asked for them.</p>{{end}}`))

type pkgRow struct{ Name, Versions string }

// repoPage is a repository's web page: how to use it and what it holds.
func (s *Server) repoPage(c *gin.Context) {
	ctx := c.Request.Context()
	repo, err := s.svc.Store.Repo(ctx, c.Param("repo"))
	if err != nil {
		c.Error(errStatus(err))
		return
	}
	txn, err := s.svc.Store.Latest(ctx)
	if err != nil {
		c.Error(err)
		return
	}
	q := strings.ToLower(strings.TrimSpace(c.Query("q")))
	rows, err := s.svc.packageRows(ctx, repo, txn, q)
	if err != nil {
		c.Error(err)
		return
	}
	data := map[string]any{
		"Repo": repo, "URL": s.URL() + "/" + repo.Name, "Host": s.URL(), "Query": c.Query("q"),
		"Packages": rows, "Today": s.svc.now().UTC().Format("2006-01-02"),
	}
	for _, src := range repo.Sources {
		if src.Type == store.LocalPython && data["Upload"] == nil {
			data["Upload"] = src.Name
		}
		if src.Type == store.PyPIMirror {
			data["Mirror"] = true
		}
	}
	body, err := ui.Fragment(repoTmpl, data)
	if err != nil {
		c.Error(err)
		return
	}
	s.Render(c, http.StatusOK, repo.Name, body)
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
