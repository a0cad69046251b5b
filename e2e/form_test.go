package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// htmlForm is a form found on a page, as a browser would submit it.
type htmlForm struct {
	Action string
	Method string
	Fields url.Values
}

// forms lists the forms of a page, resolving actions against base.
func forms(t *testing.T, base *url.URL, page string) []htmlForm {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var out []htmlForm
	var cur *htmlForm
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := func(k string) string {
				for _, a := range n.Attr {
					if a.Key == k {
						return a.Val
					}
				}
				return ""
			}
			switch n.Data {
			case "form":
				action, err := base.Parse(attr("action"))
				if err != nil {
					t.Fatalf("form action %q: %v", attr("action"), err)
				}
				method := strings.ToUpper(attr("method"))
				if method == "" {
					method = "GET"
				}
				out = append(out, htmlForm{Action: action.String(), Method: method, Fields: url.Values{}})
				cur = &out[len(out)-1]
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c)
				}
				cur = nil
				return
			case "input", "button", "select", "textarea":
				if cur != nil && attr("name") != "" && (n.Data != "button" || attr("value") != "") {
					cur.Fields.Set(attr("name"), attr("value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

// formWith returns the first form that has every one of the named fields.
func formWith(t *testing.T, base *url.URL, page string, names ...string) htmlForm {
	t.Helper()
	for _, f := range forms(t, base, page) {
		ok := true
		for _, n := range names {
			if _, has := f.Fields[n]; !has {
				ok = false
			}
		}
		if ok {
			return f
		}
	}
	t.Fatalf("no form with fields %v on page:\n%s", names, page)
	return htmlForm{}
}

// browse is a cookie-jar client's request: it follows redirects like a
// browser and returns the final URL, status and body.
func browse(t *testing.T, c *http.Client, method, u string, form url.Values) (*url.URL, int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Request.URL, resp.StatusCode, string(b)
}

// submit fills fields into f and submits it.
func submit(t *testing.T, c *http.Client, f htmlForm, fields map[string]string) (*url.URL, int, string) {
	t.Helper()
	vals := url.Values{}
	for k, v := range f.Fields {
		vals[k] = append([]string(nil), v...)
	}
	for k, v := range fields {
		vals.Set(k, v)
	}
	if f.Method == "GET" {
		u, _ := url.Parse(f.Action)
		u.RawQuery = vals.Encode()
		return browse(t, c, "GET", u.String(), nil)
	}
	return browse(t, c, f.Method, f.Action, vals)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(fmt.Errorf("parse %q: %w", s, err))
	}
	return u
}
