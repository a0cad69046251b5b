package keycloaktest

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// maxPage bounds how much of a page the helpers read.
const maxPage = 1 << 20

// SubmitLogin signs in on Keycloak's login page as a browser does: it reads
// page, a response whose body is that page (typically where client ended up
// after following a relying party's login redirect), fills username and
// password into the form id="kc-form-login" along with the form's other
// fields, and posts it to the form's action with client. client follows
// redirects as it is configured to — by default back to the relying party's
// callback and on to wherever that sends the browser — and SubmitLogin
// returns the last response; the caller closes its body. page.Body is read
// and closed.
//
// client needs a cookie jar: Keycloak ties the form to its session cookie.
// A page without the login form fails the test, with the page's text.
func SubmitLogin(t testing.TB, client *http.Client, page *http.Response, username, password string) *http.Response {
	t.Helper()
	if client.Jar == nil {
		t.Fatal("keycloaktest: SubmitLogin: the http.Client needs a cookie jar (net/http/cookiejar)")
	}
	body, err := io.ReadAll(io.LimitReader(page.Body, maxPage))
	page.Body.Close()
	if err != nil {
		t.Fatalf("keycloaktest: read %s: %v", page.Request.URL, err)
	}
	action, fields, err := loginForm(body)
	if err != nil {
		t.Fatalf("keycloaktest: %s (%s): %v; the page says: %s", page.Request.URL, page.Status, err, pageText(body))
	}
	target, err := page.Request.URL.Parse(action)
	if err != nil {
		t.Fatalf("keycloaktest: login form action %q: %v", action, err)
	}
	fields.Set("username", username)
	fields.Set("password", password)
	req, err := http.NewRequest(http.MethodPost, target.String(), strings.NewReader(fields.Encode()))
	if err != nil {
		t.Fatalf("keycloaktest: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", target.Scheme+"://"+target.Host)
	req.Header.Set("Referer", page.Request.URL.String())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("keycloaktest: post login form to %s: %v", target, err)
	}
	return resp
}

// Login signs username in through authorizeURL, an authorization request
// to this server's realm that the test built (with golang.org/x/oauth2's
// AuthCodeURL, say): it fetches the login page, posts the credentials and
// returns the URL Keycloak then redirects to off its own host — the
// client's redirect URI with code and state, or with error — without
// requesting it, so no relying party needs to run. If client's cookie jar
// already holds a Keycloak session for the user, there is no form and the
// redirect comes at once. Wrong credentials fail the test with Keycloak's
// message. client is used as it is, except that redirects leaving
// Keycloak are not followed.
func (s *Server) Login(t testing.TB, client *http.Client, authorizeURL, username, password string) (redirect *url.URL) {
	t.Helper()
	au, err := url.Parse(authorizeURL)
	if err != nil {
		t.Fatalf("keycloaktest: authorize URL: %v", err)
	}
	onKeycloak := func(u *url.URL) bool { return u.Host == s.host || u.Host == au.Host }
	c := *client // same jar and transport
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !onKeycloak(req.URL) {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	offKeycloak := func(resp *http.Response) *url.URL {
		loc, err := resp.Location()
		if err != nil || onKeycloak(loc) {
			return nil
		}
		return loc
	}

	resp, err := c.Get(authorizeURL)
	if err != nil {
		t.Fatalf("keycloaktest: GET %s: %v", authorizeURL, err)
	}
	if loc := offKeycloak(resp); loc != nil { // signed in already
		resp.Body.Close()
		return loc
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxPage))
		resp.Body.Close()
		t.Fatalf("keycloaktest: GET %s: %s; the page says: %s", authorizeURL, resp.Status, pageText(body))
	}
	resp = SubmitLogin(t, &c, resp, username, password)
	defer resp.Body.Close()
	if loc := offKeycloak(resp); loc != nil {
		return loc
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxPage))
	t.Fatalf("keycloaktest: signing in %q did not redirect off Keycloak: %s %s; the page says: %s",
		username, resp.Status, resp.Request.URL, pageText(body))
	return nil
}

// loginForm finds Keycloak's login form and returns its action and fields.
func loginForm(page []byte) (action string, fields url.Values, err error) {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return "", nil, err
	}
	form := find(doc, func(n *html.Node) bool {
		return n.Type == html.ElementNode && n.Data == "form" && attr(n, "id") == "kc-form-login"
	})
	if form == nil {
		return "", nil, errors.New(`no login form (form id="kc-form-login")`)
	}
	action = attr(form, "action")
	if action == "" {
		return "", nil, errors.New("login form has no action")
	}
	fields = url.Values{}
	submitted := false
	walk(form, func(n *html.Node) {
		if n.Type != html.ElementNode || (n.Data != "input" && n.Data != "button") {
			return
		}
		name := attr(n, "name")
		if name == "" || hasAttr(n, "disabled") {
			return
		}
		typ := strings.ToLower(attr(n, "type"))
		if n.Data == "button" && typ == "" {
			typ = "submit"
		}
		switch typ {
		case "submit", "image":
			if !submitted { // the button a person clicks
				fields.Set(name, attr(n, "value"))
				submitted = true
			}
		case "checkbox", "radio":
			if hasAttr(n, "checked") {
				v := attr(n, "value")
				if v == "" {
					v = "on"
				}
				fields.Add(name, v)
			}
		case "button", "reset", "file":
		default:
			fields.Add(name, attr(n, "value"))
		}
	})
	return action, fields, nil
}

// pageText is a page's title and the start of its visible text, for
// failure messages.
func pageText(page []byte) string {
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		return string(page[:min(len(page), 300)])
	}
	var b strings.Builder
	var text func(*html.Node)
	text = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			if f := strings.Join(strings.Fields(n.Data), " "); f != "" {
				b.WriteString(f)
				b.WriteString(" ")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			text(c)
		}
	}
	text(doc)
	out := strings.TrimSpace(b.String())
	if title := find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "title" }); title != nil && title.FirstChild != nil {
		out = "[" + strings.TrimSpace(title.FirstChild.Data) + "] " + out
	}
	if len(out) > 600 {
		out = out[:600] + "…"
	}
	if out == "" {
		return "(nothing)"
	}
	return out
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if m := find(c, match); m != nil {
			return m
		}
	}
	return nil
}

func walk(n *html.Node, visit func(*html.Node)) {
	visit(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, visit)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}
