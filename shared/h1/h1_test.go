package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// acceptCases are heads the fast path must take, with what Parse should
// read from them. Every one is also checked against net/http by
// TestParseAgreesWithNetHTTP and seeds FuzzParse.
var acceptCases = []struct {
	name string
	head string
	want parsed
}{
	{
		name: "simple GET",
		head: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		want: parsed{Method: "GET", Target: "/", Path: "/", Host: "example.com"},
	},
	{
		name: "query",
		head: "GET /a/b?x=1&y=%20z HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
		want: parsed{Method: "GET", Target: "/a/b?x=1&y=%20z", Path: "/a/b", Query: "x=1&y=%20z", Host: "example.com"},
	},
	{
		name: "empty query keeps the ? in Target",
		head: "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n",
		want: parsed{Method: "GET", Target: "/a?", Path: "/a", Host: "h"},
	},
	{
		name: "? inside the query",
		head: "GET /a?b?c=/d HTTP/1.1\r\nHost: h\r\n\r\n",
		want: parsed{Method: "GET", Target: "/a?b?c=/d", Path: "/a", Query: "b?c=/d", Host: "h"},
	},
	{
		name: "path with sub-delims and escapes",
		head: "GET /a%2Fb/!$&'()*+,;=:@~-._%7e HTTP/1.1\r\nHost: h\r\n\r\n",
		want: parsed{Method: "GET", Target: "/a%2Fb/!$&'()*+,;=:@~-._%7e", Path: "/a%2Fb/!$&'()*+,;=:@~-._%7e", Host: "h"},
	},
	{
		name: "HEAD",
		head: "HEAD /x HTTP/1.1\r\nHost: h:8080\r\n\r\n",
		want: parsed{Method: "HEAD", Target: "/x", Path: "/x", Host: "h:8080"},
	},
	{
		name: "bare LF line endings",
		head: "GET /x HTTP/1.1\nHost: h\nAccept: text/html\n\n",
		want: parsed{Method: "GET", Target: "/x", Path: "/x", Host: "h"},
	},
	{
		name: "mixed line endings",
		head: "GET /x HTTP/1.1\r\nHost: h\nAccept: text/html\r\n\n",
		want: parsed{Method: "GET", Target: "/x", Path: "/x", Host: "h"},
	},
	{
		name: "Connection: close",
		head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		want: parsed{Method: "GET", Target: "/", Path: "/", Host: "h", Close: true},
	},
	{
		name: "Connection: keep-alive",
		head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
		want: parsed{Method: "GET", Target: "/", Path: "/", Host: "h"},
	},
	{
		name: "Connection list with close in another case",
		head: "GET / HTTP/1.1\r\nHost: h\r\nconnection: Keep-Alive , CLOSE,\r\n\r\n",
		want: parsed{Method: "GET", Target: "/", Path: "/", Host: "h", Close: true},
	},
	{
		name: "close on a second Connection line",
		head: "GET / HTTP/1.1\r\nConnection: keep-alive\r\nHost: h\r\nConnection: close\r\n\r\n",
		want: parsed{Method: "GET", Target: "/", Path: "/", Host: "h", Close: true},
	},
	{
		name: "POST without body",
		head: "POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n\r\n",
		want: parsed{Method: "POST", Target: "/submit", Path: "/submit", Host: "h"},
	},
	{
		name: "other token method",
		head: "PURGE /c HTTP/1.1\r\nHost: h\r\n\r\n",
		want: parsed{Method: "PURGE", Target: "/c", Path: "/c", Host: "h"},
	},
	{
		name: "host header name in any case, IPv6 host, trimmed value",
		head: "GET / HTTP/1.1\r\nhOsT: \t[::1]:80 \r\n\r\n",
		want: parsed{Method: "GET", Target: "/", Path: "/", Host: "[::1]:80"},
	},
	{
		name: "obs-text and tab in a value, empty value",
		head: "GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xc3\xa9\tb\r\nX-Empty:\r\n\r\n",
		want: parsed{Method: "GET", Target: "/", Path: "/", Host: "h"},
	},
	{
		name: "double slash path is a path, not an authority",
		head: "GET //evil.example/x HTTP/1.1\r\nHost: h\r\n\r\n",
		want: parsed{Method: "GET", Target: "//evil.example/x", Path: "//evil.example/x", Host: "h"},
	},
}

// parsed is what TestParseAccepts compares of a Request.
type parsed struct {
	Method, Target, Path, Query, Host string
	Close                             bool
}

// refuseCases are heads Parse must leave to net/http.
var refuseCases = []struct{ name, head string }{
	{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: h\r\n\r\n"},
	{"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n"},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	{"CONNECT authority", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"},
	{"CONNECT with a path", "CONNECT /rpc HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"absolute-form target", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"asterisk target", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"empty target", "GET  HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"},
	{"two Host lines", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"},
	{"invalid Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
	{"Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
	{"Content-Length 0", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
	{"Content-Length", "POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 5\r\n\r\nhello"},
	{"Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"Upgrade", "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
	{"Upgrade alone", "GET / HTTP/1.1\r\nHost: h\r\nUPGRADE: h2c\r\n\r\n"},
	{"Expect", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"},
	{"Connection naming another header", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\n\r\n"},
	{"obs-fold continuation", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n"},
	{"obs-fold with tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n"},
	{"header name with space", "GET / HTTP/1.1\r\nHost: h\r\nX A: 1\r\n\r\n"},
	{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n"},
	{"empty header name", "GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n"},
	{"header line without colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n"},
	{"control char in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n"},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n"},
	{"DEL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n"},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n"},
	{"CR CR LF", "GET / HTTP/1.1\r\nHost: h\r\r\n\r\n"},
	{"path with space", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"path with quote", "GET /a\"b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"path with <", "GET /a<b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"path with backslash", "GET /a\\b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"path with fragment", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"path with non-ASCII", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"short %-escape", "GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"lone %", "GET /a% HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"bad %-escape", "GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"bad %-escape in query", "GET /a?x=%g0 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"query with ;", "GET /a?x=1;y=2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"query with space-like byte", "GET /a?x=\x7f HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"method not a token", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"tab for space", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"empty", ""},
}

// regressionHeads are heads where Parse once accepted and net/http
// disagreed (found by FuzzParse); TestParseAgreesWithNetHTTP and FuzzParse
// keep them. The comments say what differed.
var regressionHeads = []struct{ name, head string }{
	// net/http compares Connection tokens byte by byte in ASCII
	// (httpguts.HeaderValuesContainsToken); h1 used strings.TrimSpace and
	// strings.EqualFold, which also trim Unicode spaces and fold "ſ"
	// (U+017F) to "s": h1 said Close, net/http kept the connection.
	{"Connection close with Unicode s", "GET / HTTP/1.1\r\nHost: h\r\nConnection: clo\xc5\xbfe\r\n\r\n"},
	{"Connection close with NBSP", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\xc2\xa0\r\n\r\n"},
	// net/http adds "Cache-Control: no-cache" to req.Header when the
	// request has "Pragma: no-cache" and no Cache-Control
	// (fixPragmaCacheControl); Parse now leaves such requests to it.
	{"Pragma no-cache", "GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n"},
	// Cookie differences, see TestCookieAgreesWithNetHTTP.
	{"cookie name with spaces around =", "GET / HTTP/1.1\r\nHost: h\r\nCookie: a = 1\r\n\r\n"},
	{"cookie without =", "GET / HTTP/1.1\r\nHost: h\r\nCookie: flag; a=1\r\n\r\n"},
	{"invalid cookie shadows a valid one", "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=x\\y; a=2\r\n\r\n"},
	{"cookie name after NBSP", "GET / HTTP/1.1\r\nHost: h\r\nCookie: \xc2\xa0a=1\r\n\r\n"},
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range acceptCases {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := Parse([]byte(tc.head))
			if !ok {
				t.Fatalf("Parse(%q) refused", tc.head)
			}
			got := parsed{Method: r.Method, Target: r.Target, Path: r.Path, Query: r.Query, Host: r.Host, Close: r.Close}
			if got != tc.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tc.head, got, tc.want)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range refuseCases {
		t.Run(tc.name, func(t *testing.T) {
			if r, ok := Parse([]byte(tc.head)); ok || r != nil {
				t.Errorf("Parse(%q) = %+v, %v; want nil, false", tc.head, r, ok)
			}
		})
	}
}

// TestParseAgreesWithNetHTTP checks the package's promise on every head
// the tables hold: what Parse accepts, net/http reads the same way.
func TestParseAgreesWithNetHTTP(t *testing.T) {
	var heads []struct{ name, head string }
	for _, tc := range acceptCases {
		heads = append(heads, struct{ name, head string }{tc.name, tc.head})
	}
	heads = append(heads, refuseCases...)
	heads = append(heads, regressionHeads...)
	for _, tc := range cookieCases {
		heads = append(heads, struct{ name, head string }{"cookie " + tc.name, cookieHead(tc.lines...)})
	}
	for _, tc := range heads {
		t.Run(tc.name, func(t *testing.T) {
			if r, ok := Parse([]byte(tc.head)); ok {
				checkAgainstNetHTTP(t, []byte(tc.head), r)
			}
		})
	}
}

// checkAgainstNetHTTP reports every way net/http's reading of head differs
// from r, which Parse accepted.
func checkAgainstNetHTTP(t *testing.T, head []byte, r *Request) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
	if err != nil {
		t.Errorf("Parse accepted %q, net/http refuses it: %v", head, err)
		return
	}
	if req.Method != r.Method {
		t.Errorf("%q: Method: h1 %q, net/http %q", head, r.Method, req.Method)
	}
	if req.RequestURI != r.Target {
		t.Errorf("%q: Target: h1 %q, net/http RequestURI %q", head, r.Target, req.RequestURI)
	}
	if req.Host != r.Host {
		t.Errorf("%q: Host: h1 %q, net/http %q", head, r.Host, req.Host)
	}
	if p := req.URL.EscapedPath(); p != r.Path {
		t.Errorf("%q: Path: h1 %q, net/http EscapedPath %q", head, r.Path, p)
	}
	if req.URL.RawQuery != r.Query {
		t.Errorf("%q: Query: h1 %q, net/http RawQuery %q", head, r.Query, req.URL.RawQuery)
	}
	if req.Close != r.Close {
		t.Errorf("%q: Close: h1 %v, net/http %v", head, r.Close, req.Close)
	}
	if req.ContentLength != 0 || req.Body != http.NoBody {
		t.Errorf("%q: net/http sees a body (ContentLength %d) in a head h1 accepted", head, req.ContentLength)
	}
	// http.ReadRequest moves Host out of the header map; if that changed,
	// the loop below would need to know.
	if _, ok := req.Header["Host"]; ok {
		t.Errorf("%q: net/http kept Host in req.Header", head)
	}
	for key, vals := range req.Header {
		if v, ok := r.Header(key); !ok || v != vals[0] {
			t.Errorf("%q: Header(%q) = %q, %v; net/http Get %q", head, key, v, ok, vals[0])
		}
		// The proxy copies every line, so all values must match, in order.
		var got []string
		for n, v := range r.Headers() {
			if EqualFold(n, key) {
				got = append(got, string(v))
			}
		}
		if !slices.Equal(got, vals) {
			t.Errorf("%q: %s values: h1 %q, net/http %q", head, key, got, vals)
		}
	}
	for n := range r.Headers() {
		if !EqualFold(n, "Host") && req.Header.Values(string(n)) == nil {
			t.Errorf("%q: h1 has header %q, net/http does not", head, n)
		}
	}
	checkCookies(t, head, r, req)
	if hr, ok := r.HTTPRequest(); !ok || hr.RequestURI != req.RequestURI {
		t.Errorf("%q: HTTPRequest() failed on an accepted head", head)
	}
}

// checkCookies compares Cookie with net/http's Request.Cookie for every
// name either side sees.
func checkCookies(t *testing.T, head []byte, r *Request, req *http.Request) {
	t.Helper()
	names := map[string]bool{}
	for _, c := range req.Cookies() {
		names[c.Name] = true
	}
	for n, v := range r.Headers() {
		if !EqualFold(n, "Cookie") {
			continue
		}
		for pair := range bytes.SplitSeq(v, []byte(";")) {
			for _, p := range [][]byte{bytes.TrimSpace(pair), bytes.Trim(pair, " \t")} {
				if k, _, _ := bytes.Cut(p, []byte("=")); len(k) > 0 {
					names[string(k)] = true
					names[string(bytes.Trim(k, " \t"))] = true
				}
			}
		}
	}
	for name := range names {
		// Callers ask for token names; net/http finds no others.
		if !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		got, ok := r.Cookie(name)
		c, err := req.Cookie(name)
		switch {
		case err == nil && (!ok || got != c.Value):
			t.Errorf("%q: Cookie(%q) = %q, %v; net/http finds %q", head, name, got, ok, c.Value)
		case err != nil && ok:
			t.Errorf("%q: Cookie(%q) = %q; net/http finds no such cookie", head, name, got)
		}
	}
}

func mustParse(t *testing.T, head string) *Request {
	t.Helper()
	r, ok := Parse([]byte(head))
	if !ok {
		t.Fatalf("Parse(%q) refused", head)
	}
	return r
}

func TestHeader(t *testing.T) {
	r := mustParse(t, "GET / HTTP/1.1\r\nHost: h\r\nX-Dup: first\r\nAccept: a/b\r\nx-dup: second\r\nX-Empty:\r\n\r\n")
	tests := []struct {
		name      string
		wantValue string
		wantOK    bool
	}{
		{"Accept", "a/b", true},
		{"accept", "a/b", true},
		{"ACCEPT", "a/b", true},
		{"X-Dup", "first", true}, // the first of two lines
		{"Host", "h", true},
		{"X-Empty", "", true}, // sent, empty
		{"X-Absent", "", false},
		{"Accep", "", false},
		{"Accept-", "", false},
	}
	for _, tc := range tests {
		if v, ok := r.Header(tc.name); v != tc.wantValue || ok != tc.wantOK {
			t.Errorf("Header(%q) = %q, %v; want %q, %v", tc.name, v, ok, tc.wantValue, tc.wantOK)
		}
	}
}

func TestHeaders(t *testing.T) {
	r := mustParse(t, "GET / HTTP/1.1\r\nB: 1\r\nHost: h\r\na:  2 \r\nB: 3\n\r\n")
	var got []string
	for n, v := range r.Headers() {
		got = append(got, string(n)+"="+string(v))
	}
	want := []string{"B=1", "Host=h", "a=2", "B=3"}
	if !slices.Equal(got, want) {
		t.Errorf("Headers() = %q, want %q", got, want)
	}

	// Stopping early must stop the iteration.
	got = got[:0]
	for n := range r.Headers() {
		got = append(got, string(n))
		if len(got) == 2 {
			break
		}
	}
	if !slices.Equal(got, []string{"B", "Host"}) {
		t.Errorf("Headers() with break yielded %q", got)
	}
}

func cookieHead(lines ...string) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: h\r\n")
	for _, l := range lines {
		b.WriteString("Cookie: " + l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

var cookieCases = []struct {
	name   string
	lines  []string // Cookie header values
	cookie string
	want   string
	wantOK bool
}{
	{"first of several", []string{"a=1; b=2; c=3"}, "a", "1", true},
	{"middle of several", []string{"a=1; b=2; c=3"}, "b", "2", true},
	{"last of several", []string{"a=1; b=2; c=3"}, "c", "3", true},
	{"no space after ;", []string{"a=1;b=2"}, "b", "2", true},
	{"second Cookie line", []string{"a=1", "b=2"}, "b", "2", true},
	{"first of duplicates across lines", []string{"a=1", "a=2"}, "a", "1", true},
	{"first of duplicates on a line", []string{"a=1; a=2"}, "a", "1", true},
	{"quoted value", []string{`s="abc"; t=1`}, "s", "abc", true},
	{"quoted value with space", []string{`s="a b"`}, "s", "a b", true},
	{"value with =", []string{"s=a=b"}, "s", "a=b", true},
	{"empty value", []string{"s=; t=1"}, "s", "", true},
	{"absent", []string{"a=1; b=2"}, "c", "", false},
	{"prefix of a name is not the name", []string{"session=1"}, "sess", "", false},
	{"name is case-sensitive", []string{"Session=1"}, "session", "", false},
	{"no Cookie header", nil, "a", "", false},
}

func TestCookie(t *testing.T) {
	for _, tc := range cookieCases {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, cookieHead(tc.lines...))
			if v, ok := r.Cookie(tc.cookie); v != tc.want || ok != tc.wantOK {
				t.Errorf("Cookie(%q) = %q, %v; want %q, %v", tc.cookie, v, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestCookieAgreesWithNetHTTP pins the cases where h1's Cookie reads a
// Cookie header differently from net/http's Request.Cookie, which the
// normal (gin) path uses: the fast path would then see another session
// than the normal path for the same request.
func TestCookieAgreesWithNetHTTP(t *testing.T) {
	tests := []struct {
		name, line, cookie string
	}{
		// net/http trims spaces around the name (textproto.TrimString);
		// h1 compares "a " with "a" and misses the cookie.
		{"spaces around =", "a = 1", "a"},
		// net/http reads a pair without "=" as a cookie with an empty
		// value; h1 skips it.
		{"pair without =", "flag; a=1", "flag"},
		// net/http skips a pair whose value is invalid and finds the next
		// one of that name; h1 returns the invalid first one.
		{"invalid value shadows a valid one", `a=x\y; a=2`, "a"},
		{"unbalanced quote shadows a valid one", `a="x; a=2`, "a"},
		// h1 trims with bytes.TrimSpace, which also removes Unicode
		// spaces (U+00A0 here); net/http trims only ASCII space and tab
		// and refuses the name "\u00a0a", so it finds no cookie "a".
		{"NBSP before the name", "\u00a0a=1", "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head := cookieHead(tc.line)
			r := mustParse(t, head)
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := r.Cookie(tc.cookie)
			c, err := req.Cookie(tc.cookie)
			want, wantOK := "", false
			if err == nil {
				want, wantOK = c.Value, true
			}
			if got != want || ok != wantOK {
				t.Errorf("h1 bug: Cookie: %s → Cookie(%q) = %q, %v; net/http Request.Cookie gives %q, %v",
					tc.line, tc.cookie, got, ok, want, wantOK)
			}
		})
	}
}

func TestHeadLength(t *testing.T) {
	tests := []struct {
		name string
		buf  string
		want int
	}{
		{"CRLF", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 27},
		{"CRLF with body after", "POST / HTTP/1.1\r\nHost: h\r\n\r\nbody\r\n\r\n", 28},
		{"bare LF", "GET / HTTP/1.1\nHost: h\n\n", 24},
		{"CRLF line then bare LF end", "GET / HTTP/1.1\r\nHost: h\r\n\n", 26},
		{"request line only", "GET / HTTP/1.1\r\n\r\n", 18},
		{"next request after", "GET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n", 18},
		{"CR CR LF is not an empty line", "GET / HTTP/1.1\r\n\r\r\n\r\n", 21},
		{"incomplete: no empty line", "GET / HTTP/1.1\r\nHost: h\r\n", 0},
		{"incomplete: CR only", "GET / HTTP/1.1\r\nHost: h\r\n\r", 0},
		{"incomplete: partial line", "GET / HT", 0},
		{"empty buffer", "", 0},
		{"lone CR", "\r", 0},
		{"leading CRLF", "\r\nGET / HTTP/1.1\r\n\r\n", -1},
		{"leading LF", "\nGET / HTTP/1.1\r\n\r\n", -1},
	}
	for _, tc := range tests {
		if got := HeadLength([]byte(tc.buf)); got != tc.want {
			t.Errorf("%s: HeadLength(%q) = %d, want %d", tc.name, tc.buf, got, tc.want)
		}
	}
}

func TestHTTPRequest(t *testing.T) {
	type ctxKey struct{}
	r := mustParse(t, "POST /a%2Fb?x=1 HTTP/1.1\r\nHost: h:1\r\nX-A: v\r\nConnection: close\r\n\r\n")
	r.RemoteAddr = "192.0.2.1:5555"
	r.Ctx = context.WithValue(context.Background(), ctxKey{}, "mark")
	req, ok := r.HTTPRequest()
	if !ok {
		t.Fatal("HTTPRequest() failed")
	}
	if req.Method != "POST" || req.URL.EscapedPath() != "/a%2Fb" || req.URL.Path != "/a/b" ||
		req.URL.RawQuery != "x=1" || req.Host != "h:1" || !req.Close {
		t.Errorf("HTTPRequest() = %s %s host %q close %v", req.Method, req.URL, req.Host, req.Close)
	}
	if got := req.Header.Get("X-A"); got != "v" {
		t.Errorf("X-A = %q, want v", got)
	}
	if req.RemoteAddr != r.RemoteAddr {
		t.Errorf("RemoteAddr = %q, want %q", req.RemoteAddr, r.RemoteAddr)
	}
	if got := req.Context().Value(ctxKey{}); got != "mark" {
		t.Errorf("Context value = %v; HTTPRequest must use r.Ctx", got)
	}

	// Without a Ctx it still works, with net/http's background context.
	r = mustParse(t, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	if req, ok := r.HTTPRequest(); !ok || req.Context() == nil || req.URL.Path != "/" {
		t.Errorf("HTTPRequest() without Ctx = %v, %v", req, ok)
	}
}

func TestEqualFold(t *testing.T) {
	tests := []struct {
		b, s string
		want bool
	}{
		{"Host", "Host", true},
		{"host", "Host", true},
		{"HOST", "host", true},
		{"Content-Length", "content-length", true},
		{"", "", true},
		{"Hos", "Host", false},
		{"Hosts", "Host", false},
		{"Hast", "Host", false},
		// Pairs that differ only in bit 0x20 but are not letters.
		{"@", "`", false},
		{"`", "@", false},
		{"[", "{", false},
		{"{", "[", false},
		{"]", "}", false},
		{"^", "~", false},
		{"_", "\x7f", false},
		{"-", "\r", false},
		{"\xc5", "\xe5", false},
		{"X-A@", "x-a`", false},
	}
	for _, tc := range tests {
		if got := EqualFold(tc.b, tc.s); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.b, tc.s, got, tc.want)
		}
		if got := EqualFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("EqualFold([]byte(%q), %q) = %v, want %v", tc.b, tc.s, got, tc.want)
		}
	}
}

// TestParseIntoReuses: parsing a connection's requests into one Request
// gives each request its own values, and a request for the same path and
// host as the one before allocates nothing.
func TestParseIntoReuses(t *testing.T) {
	heads := []string{
		"GET /a?x=1 HTTP/1.1\r\nHost: one\r\n\r\n",
		"GET /a?x=1 HTTP/1.1\r\nHost: one\r\n\r\n",
		"POST /bb HTTP/1.1\r\nHost: two\r\n\r\n",
		"GET /a?x=1 HTTP/1.1\r\nHost: one\r\n\r\n",
	}
	var r Request
	for _, h := range heads {
		if !ParseInto(&r, []byte(h)) {
			t.Fatalf("ParseInto refused %q", h)
		}
		fresh, _ := Parse([]byte(h))
		if r.Method != fresh.Method || r.Target != fresh.Target || r.Path != fresh.Path || r.Query != fresh.Query || r.Host != fresh.Host {
			t.Errorf("reused Request read %q as %s %s (%s ? %s) host %s, want %s %s (%s ? %s) host %s", h,
				r.Method, r.Target, r.Path, r.Query, r.Host, fresh.Method, fresh.Target, fresh.Path, fresh.Query, fresh.Host)
		}
	}
	head := []byte(heads[0])
	if n := testing.AllocsPerRun(100, func() { ParseInto(&r, head) }); n != 0 {
		t.Errorf("parsing the same request again allocates %v times, want 0", n)
	}
}

// FuzzTrimOWS checks TrimOWS against what it replaces, bytes.Trim and
// strings.Trim with the cutset " \t".
func FuzzTrimOWS(f *testing.F) {
	for _, s := range []string{"", " ", "\t", "a", " a ", "\t a b\t ", "a \t", " \t\r\n", "\x00 x \x00", "  \u00a0x\u00a0 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := TrimOWS(s), strings.Trim(s, " \t"); got != want {
			t.Errorf("TrimOWS(%q) = %q, want %q", s, got, want)
		}
		if got, want := TrimOWS([]byte(s)), bytes.Trim([]byte(s), " \t"); !bytes.Equal(got, want) {
			t.Errorf("TrimOWS([]byte(%q)) = %q, want %q", s, got, want)
		}
	})
}

// FuzzParse checks the package's promise: whenever Parse accepts a head,
// net/http reads the same request from it.
func FuzzParse(f *testing.F) {
	for _, tc := range acceptCases {
		f.Add([]byte(tc.head))
	}
	for _, tc := range refuseCases {
		f.Add([]byte(tc.head))
	}
	for _, tc := range regressionHeads {
		f.Add([]byte(tc.head))
	}
	for _, tc := range cookieCases {
		f.Add([]byte(cookieHead(tc.lines...)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		// Parse is given a whole head, as the server cuts it with
		// HeadLength; on anything else it only must not panic.
		n := HeadLength(data)
		if n <= 0 {
			Parse(data)
			return
		}
		head := data[:n]
		r, ok := Parse(head)
		if !bytes.Equal(data, orig) {
			t.Fatalf("Parse modified its input")
		}
		if !ok {
			return
		}
		checkAgainstNetHTTP(t, head, r)
	})
}

// FuzzHeadLength checks that HeadLength never panics and that a positive
// result is the end of the first empty line.
func FuzzHeadLength(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\nbody",
		"GET / HTTP/1.1\r\nHost: h\r\n",
		"\r\n",
		"\n",
		"\r",
		"",
		"a\r\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		n := HeadLength(buf)
		switch {
		case n > len(buf) || n < -1:
			t.Fatalf("HeadLength(%q) = %d, out of range", buf, n)
		case n == -1:
			if !bytes.HasPrefix(buf, []byte("\n")) && !bytes.HasPrefix(buf, []byte("\r\n")) {
				t.Fatalf("HeadLength(%q) = -1, but buf does not start with an empty line", buf)
			}
		case n == 0:
			// Incomplete: no empty line anywhere (after the first line).
			if bytes.Contains(buf, []byte("\n\n")) || bytes.Contains(buf, []byte("\n\r\n")) {
				t.Fatalf("HeadLength(%q) = 0, but buf holds an empty line", buf)
			}
		default:
			head := buf[:n]
			if !bytes.HasSuffix(head, []byte("\n\r\n")) && !bytes.HasSuffix(head, []byte("\n\n")) {
				t.Fatalf("HeadLength(%q) = %d: head %q does not end with an empty line", buf, n, head)
			}
			// No earlier empty line: the lines before the last are all
			// non-empty.
			body := head[:len(head)-1]
			body = body[:bytes.LastIndexByte(body, '\n')+1]
			for line := range bytes.Lines(body) {
				if string(line) == "\n" || string(line) == "\r\n" {
					t.Fatalf("HeadLength(%q) = %d, past an earlier empty line", buf, n)
				}
			}
		}
	})
}

// TestPeekHead: the head through its empty line, unconsumed, however it
// arrives; beforeRead only when a read has to wait, once; the two refusals.
func TestPeekHead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string // what the peer sends, read by read
		size   int      // the reader's buffer
		head   string
		err    error
		waits  int // beforeRead calls
	}{
		{"whole", []string{"GET / HTTP/1.1\r\nHost: h\r\n\r\nbody"}, 64, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 1},
		{"in pieces", []string{"GET / HT", "TP/1.1\r\nHost: h\r", "\n\r\n"}, 64, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", nil, 1},
		{"too large", []string{"GET / HTTP/1.1\r\nX-Long: " + strings.Repeat("x", 64) + "\r\n\r\n"}, 32, "", ErrHeadTooLarge, 1},
		{"empty line first", []string{"\r\nGET / HTTP/1.1\r\n\r\n"}, 64, "", ErrNotHead, 1},
		{"peer stops", []string{"GET / HTTP/1.1\r\n"}, 64, "", io.EOF, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReaderSize(&chunkReader{chunks: tc.chunks}, tc.size)
			waits := 0
			head, err := PeekHead(br, func() { waits++ })
			if string(head) != tc.head || !errors.Is(err, tc.err) {
				t.Errorf("PeekHead = %q, %v; want %q, %v", head, err, tc.head, tc.err)
			}
			if waits > tc.waits {
				t.Errorf("beforeRead called %d times, want at most %d", waits, tc.waits)
			}
			if err == nil && br.Buffered() < len(head) {
				t.Error("the head was consumed")
			}
		})
	}
}

// chunkReader returns its chunks one Read at a time, then EOF.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}
