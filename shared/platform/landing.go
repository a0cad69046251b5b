package platform

import (
	"html/template"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/buildinfo"
	"github.com/atrium-suite/atrium/shared/config"
	"github.com/atrium-suite/atrium/shared/db"
	"github.com/atrium-suite/atrium/shared/ui"
)

// Landing is the content of a product's front page.
type Landing struct {
	// Lead says in a sentence what the product is for.
	Lead string
	// Extra, when set, renders more of the page below the lead.
	Extra func(c *gin.Context) (template.HTML, error)
}

var landingBody = template.Must(template.New("landing").Parse(`<h1>{{.Display}}</h1>
<p class="lead">{{.Lead}}</p>
{{.Extra}}
<h2>Server</h2>
<table>
<tr><th>Version</th><td>{{.Version}}</td></tr>
<tr><th>Address</th><td><code>{{.URL}}</code></td></tr>
<tr><th>Database</th><td>{{.Database}}</td></tr>
<tr><th>Data directory</th><td><code>{{.DataDir}}</code></td></tr>
<tr><th>Health</th><td><a href="/__ping__">/__ping__</a> · <a href="/readyz">/readyz</a> · <a href="/metrics">/metrics</a></td></tr>
</table>`))

// serveLanding registers the product's front page at "/".
func (b *Base) serveLanding(l Landing) {
	b.HTTP.Engine().GET("/", b.Auth.Require(config.RoleViewer), func(c *gin.Context) {
		var extra template.HTML
		if l.Extra != nil {
			var err error
			if extra, err = l.Extra(c); err != nil {
				c.Error(err)
				return
			}
		}
		database := "SQLite"
		if b.DB.Dialect() == db.Postgres {
			database = "PostgreSQL (schema " + b.Name + ")"
		}
		if v, err := b.DB.Version(c.Request.Context()); err == nil {
			database += ", migration " + strconv.Itoa(v)
		}
		body, err := ui.Fragment(landingBody, map[string]any{
			"Display": "Atrium " + b.Display, "Lead": l.Lead, "Extra": extra,
			"Version": buildinfo.String(), "URL": b.URL(), "Database": database, "DataDir": b.DataDir,
		})
		if err != nil {
			c.Error(err)
			return
		}
		b.Render(c, http.StatusOK, b.Display, body)
	})
}
