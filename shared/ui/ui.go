// Package ui renders the pages every Atrium product shows, from one layout
// and one stylesheet, so that Connect, Workbench and Package Manager look
// like one suite: the same header with links between the products, the
// same plain typography, the same error page.
package ui

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/atrium-suite/atrium/shared/httpx"
)

//go:embed style.css
var css string

// Link points at one product of the suite.
type Link struct {
	Name   string // display name, e.g. "Package Manager"
	URL    string
	Active bool
}

// Page is one rendered page.
type Page struct {
	Product string // display name of the product serving the page
	Title   string
	Nav     []Link
	// User, when set, is shown at the right of the header: who is signed
	// in, or a sign-in link (auth.UserBadge renders it).
	User template.HTML
	Body template.HTML
}

var layout = template.Must(template.New("layout").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Atrium {{.Product}}</title>
<style>{{.CSS}}</style>
</head>
<body>
<header>
<span class="brand">Atrium</span>
<nav>{{range .Nav}}<a href="{{.URL}}"{{if .Active}} class="active" aria-current="page"{{end}}>{{.Name}}</a>{{end}}</nav>
{{if .User}}<div class="user">{{.User}}</div>{{end}}
</header>
<main>
{{.Body}}
</main>
</body>
</html>
`))

// Render writes p as a complete HTML page with the given status.
func Render(c *gin.Context, status int, p Page) {
	var buf bytes.Buffer
	err := layout.Execute(&buf, struct {
		Page
		CSS template.CSS
	}{p, template.CSS(css)})
	if err != nil {
		c.Error(httpx.Internal(err))
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// Fragment executes a body template with data, for Page.Body.
func Fragment(t *template.Template, data any) (template.HTML, error) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", err
	}
	return template.HTML(buf.String()), nil
}

var errorBody = template.Must(template.New("error").Parse(`<h1>{{.Status}} {{.Text}}</h1>
<p class="error">{{.Msg}}</p>
{{if .RequestID}}<p class="muted">Request id {{.RequestID}}</p>{{end}}`))

// ErrorRenderer returns the httpx.Config.RenderHTMLError for a product, so
// browsers get an error page in the suite's layout.
func ErrorRenderer(product string, nav []Link) func(*gin.Context, *httpx.Error) {
	return func(c *gin.Context, e *httpx.Error) {
		body, err := Fragment(errorBody, map[string]any{
			"Status": e.Status, "Text": http.StatusText(e.Status), "Msg": e.Msg, "RequestID": httpx.RequestID(c),
		})
		if err != nil {
			c.String(e.Status, "%s", e.Msg)
			return
		}
		Render(c, e.Status, Page{Product: product, Title: http.StatusText(e.Status), Nav: nav, Body: body})
	}
}
