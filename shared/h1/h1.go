// Package h1 reads HTTP/1.1 request heads as bytes, for the suite's fast
// serving path: shared/httpx parses a request with it, a product's fast
// handler decides on it (Connect: who asks for which content), and
// shared/proxy copies its header lines to the app, without the header maps,
// URL parsing and per-request goroutine of net/http's server.
//
// The parser is strict on purpose. It accepts only what it can pass on
// unchanged and safely: an origin-form target made of plain path and query
// characters, token header names, field values without control characters,
// exactly one valid Host, no body, no upgrade, no Expect. Anything else is
// refused (Parse returns false) and the server hands the request to
// net/http, which answers or refuses it as it always does; so the fast path
// never accepts a request net/http would refuse, and never has to answer
// an error itself.
package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Request is a parsed request head. Its fields and Header's results are
// valid while the request is served; the head itself belongs to the
// connection's buffer.
type Request struct {
	Method string
	Target string // the request target as sent: Path, then "?" and Query
	Path   string // the escaped path
	Query  string // the raw query, without "?"
	Host   string
	// Close is true when the client asked to end the connection after
	// this response (Connection: close).
	Close      bool
	RemoteAddr string // set by the server
	Ctx        context.Context

	head  []byte // the whole head, through the empty line
	lines []byte // the header lines, after the request line
}

// Parse reads a request head (the bytes through the empty line that ends
// it) and reports whether it is one the fast path may serve.
func Parse(head []byte) (*Request, bool) {
	r := new(Request)
	if !ParseInto(r, head) {
		return nil, false
	}
	return r, true
}

// ParseInto is Parse into r, which it overwrites (a server reuses one
// Request per connection); r is unspecified when it returns false.
func ParseInto(r *Request, head []byte) bool {
	line, rest := NextLine(head)
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return false
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return false
	}
	method, target, proto := line[:sp1], line[sp1+1:sp1+1+sp2], line[sp1+1+sp2+1:]
	if string(proto) != "HTTP/1.1" || !isToken(method) || string(method) == http.MethodConnect {
		return false
	}
	path, query, hasQuery := bytes.Cut(target, []byte("?"))
	if !validPath(path) || hasQuery && !validQuery(query) {
		return false
	}
	// A connection's requests are parsed into one Request: the strings of
	// the one before are kept when they are the same (as a client asking
	// for the same path again usually sends), saving their allocations.
	prevTarget, prevHost := r.Target, r.Host
	*r = Request{head: head, lines: rest}
	hosts := 0
	pragma, cacheControl := false, false
	for rest := rest; len(rest) > 0; {
		var l []byte
		l, rest = NextLine(rest)
		if len(l) == 0 {
			break
		}
		name, value, ok := SplitHeaderLine(l)
		if !ok {
			return false
		}
		switch len(name) {
		case 4:
			if EqualFold(name, "Host") {
				if hosts++; hosts > 1 || !httpguts.ValidHostHeader(string(value)) {
					return false
				}
				r.Host = sameOr(prevHost, value)
			}
		case 6:
			if EqualFold(name, "Expect") {
				return false
			}
			if EqualFold(name, "Pragma") {
				pragma = true
			}
		case 7:
			if EqualFold(name, "Upgrade") {
				return false
			}
		case 10:
			if EqualFold(name, "Connection") {
				// ASCII only, as net/http reads it: "cloſe" is not close.
				for tok := range strings.SplitSeq(string(value), ",") {
					switch tok = TrimOWS(tok); {
					case EqualFold(tok, "close"):
						r.Close = true
					case tok == "" || EqualFold(tok, "keep-alive"):
					default:
						// It names more headers to drop on the way; rare
						// enough to leave to net/http.
						return false
					}
				}
			}
		case 13:
			if EqualFold(name, "Cache-Control") {
				cacheControl = true
			}
		case 14:
			if EqualFold(name, "Content-Length") {
				return false
			}
		case 17:
			if EqualFold(name, "Transfer-Encoding") {
				return false
			}
		}
	}
	if hosts != 1 || pragma && !cacheControl {
		// net/http adds Cache-Control: no-cache for an HTTP/1.0 Pragma;
		// rather than copy that, leave such (rare) requests to it.
		return false
	}
	r.Method = method2string(method)
	r.Target = sameOr(prevTarget, target)
	r.Path = r.Target[:len(path)]
	if hasQuery {
		r.Query = r.Target[len(path)+1:]
	}
	return true
}

// method2string returns the common methods without allocating.
func method2string(m []byte) string {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPost:
		return http.MethodPost
	case http.MethodOptions:
		return http.MethodOptions
	case http.MethodDelete:
		return http.MethodDelete
	}
	return string(m)
}

// validPath accepts an absolute path of RFC 3986 path characters
// (unreserved, sub-delims, ":", "@", "/") with well-formed %XX escapes:
// the characters url.URL.EscapedPath leaves as they are, so the path the
// fast path routes on and forwards is the one net/http's would be.
func validPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return false
			}
			i += 2
		case !pathChar[c]:
			return false
		}
	}
	return true
}

// validQuery accepts path characters and "?" with well-formed escapes, and
// no ";": a query Go's url.ParseQuery would read differently is left to
// net/http and the proxy's cleaning of it.
func validQuery(q []byte) bool {
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 2
		case c == ';':
			return false
		case c == '?':
		case !pathChar[c]:
			return false
		}
	}
	return true
}

var pathChar = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/") {
		t[c] = true
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// Header returns the first value of the named header (its name in any
// case) and whether it was sent.
func (r *Request) Header(name string) (string, bool) {
	for n, v := range r.Headers() {
		if EqualFold(n, name) {
			return string(v), true
		}
	}
	return "", false
}

// Headers yields each header line's name and value, in order; the slices
// are the request buffer's and valid during the call only.
func (r *Request) Headers() func(yield func(name, value []byte) bool) {
	return func(yield func(name, value []byte) bool) {
		for rest := r.lines; len(rest) > 0; {
			var l []byte
			l, rest = NextLine(rest)
			if len(l) == 0 {
				return
			}
			name, value, _ := SplitHeaderLine(l)
			if !yield(name, value) {
				return
			}
		}
	}
}

// Cookie returns the value of the named cookie as net/http's
// Request.Cookie would: the first valid one of that name, its name
// trimmed of ASCII space, its value unquoted and without invalid bytes
// (an invalid one is skipped, and a later one of the name may count).
func (r *Request) Cookie(name string) (string, bool) {
	for n, v := range r.Headers() {
		if !EqualFold(n, "Cookie") {
			continue
		}
		for len(v) > 0 {
			var part []byte
			part, v, _ = bytes.Cut(v, []byte(";"))
			part = TrimOWS(part)
			if len(part) == 0 {
				continue
			}
			k, val, _ := bytes.Cut(part, []byte("="))
			k = TrimOWS(k)
			if string(k) != name || !isToken(k) {
				continue
			}
			if len(val) > 1 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			if !validCookieValue(val) {
				continue
			}
			return string(val), true
		}
	}
	return "", false
}

// validCookieValue is net/http's rule for a cookie value's bytes.
func validCookieValue(v []byte) bool {
	for _, b := range v {
		if b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// HTTPRequest is the request as net/http would have parsed it, for the
// code paths that need one (error pages); ok is false only if net/http
// could not parse what Parse accepted, which would be a bug.
func (r *Request) HTTPRequest() (*http.Request, bool) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(r.head)))
	if err != nil {
		return nil, false
	}
	req.RemoteAddr = r.RemoteAddr
	if r.Ctx != nil {
		req = req.WithContext(r.Ctx)
	}
	return req, true
}

// NextLine splits the first line, without its line break ("\r\n" or a
// bare "\n", which net/http also accepts), off b.
func NextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// SplitHeaderLine splits "Name: value" into a token name and a trimmed
// value without control characters (tabs allowed); ok is false for
// anything else, continuation lines included.
func SplitHeaderLine(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	name = line[:i]
	if !isToken(name) {
		return nil, nil, false
	}
	value = TrimOWS(line[i+1:])
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return nil, nil, false
		}
	}
	return name, value, true
}

// sameOr returns prev when b holds the same bytes (the comparison does not
// allocate), else b as a new string.
func sameOr(prev string, b []byte) string {
	if string(b) == prev {
		return prev
	}
	return string(b)
}

// TrimOWS trims HTTP's optional white space (spaces and tabs) from both
// ends of s. It is bytes.Trim(s, " \t") without building a cutset on every
// call, which showed in the proxy's profile: every header line of every
// response passes here.
func TrimOWS[S []byte | string](s S) S {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// HeadLength returns the length of the head at the start of buf (through
// its empty line), 0 when buf does not hold all of it yet, or -1 when buf
// starts with an empty line (not a head the fast path reads).
func HeadLength(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0
		}
		end := i + j + 1
		line := buf[i:end]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			if i == 0 {
				return -1
			}
			return end
		}
		i = end
	}
}

// FieldValue is v as a header value may be written: trimmed, with line
// breaks turned into spaces (as net/http writes values), so a value can
// never start another header.
func FieldValue(v string) string {
	v = TrimOWS(v)
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
		}
	}
	return v
}

// Errors of PeekHead.
var (
	ErrHeadTooLarge = errors.New("h1: head larger than the read buffer")
	ErrNotHead      = errors.New("h1: an empty line where a head starts")
)

// PeekHead returns the message head at the start of br, through its empty
// line, without consuming it, reading more as needed; the head must fit in
// br's buffer (ErrHeadTooLarge). beforeRead, when not nil, is called once,
// before the first read that waits for more bytes (a server sets its
// header timeout there: most heads arrive whole).
func PeekHead(br *bufio.Reader, beforeRead func()) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		switch n := HeadLength(buf); {
		case n > 0:
			return buf[:n], nil
		case n < 0:
			return nil, ErrNotHead
		case len(buf) == br.Size():
			return nil, ErrHeadTooLarge
		}
		if beforeRead != nil {
			beforeRead()
			beforeRead = nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// EqualFold reports whether b equals the ASCII string s, ignoring case.
func EqualFold[T []byte | string](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if c|0x20 != d|0x20 || c|0x20 < 'a' || c|0x20 > 'z' {
			return false
		}
	}
	return true
}
