package proxy

import (
	"bufio"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"

	"github.com/atrium-suite/atrium/shared/h1"
)

// direct reports whether r can take the direct path: the shared transport,
// no request body, no upgrade, no periodic flushing asked for. What is left
// (uploads, websockets) goes through httputil.ReverseProxy.
func (p *Proxy) direct(r *http.Request) bool {
	return p.pool != nil && r.ContentLength == 0 && (r.Body == nil || r.Body == http.NoBody) &&
		r.Header["Upgrade"] == nil && len(r.TransferEncoding) == 0
}

// forward is what httputil.ReverseProxy does for a request without a body,
// with less of its per-request work: no second request clone, no trace
// context, the request head written straight to the pooled connection.
// The outgoing headers are the same as on the ReverseProxy path: both go
// through rewriteTo. Under load this path spends a quarter less CPU per
// request than ReverseProxy on the same transport.
func (p *Proxy) forward(w http.ResponseWriter, in *http.Request, t Target) {
	ctx := in.Context()
	out, ok := p.outgoing(in, t)
	if !ok {
		// A target reached another way (https): leave it to ReverseProxy.
		p.rp.ServeHTTP(w, in.WithContext(withTarget(ctx, t)))
		return
	}
	on1xx := func(code int, h http.Header) error {
		// The informational response goes to the client with its own
		// headers, and the header map is then as it was before (the
		// server's request id, the affinity cookie) for the final one.
		// ReverseProxy clears it, losing those.
		dst := w.Header()
		before := dst.Clone()
		copyHeader(dst, h)
		w.WriteHeader(code)
		clear(dst)
		copyHeader(dst, before)
		return nil
	}
	res, err := p.pool.send(ctx, out.URL.Host, out, func(bw *bufio.Writer) error { return writeRequestHead(bw, out) }, on1xx)
	if err != nil {
		p.backendErrorFor(w, in, t, err)
		return
	}
	removeHopByHop(res.Header)
	copyHeader(w.Header(), res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		w.Header().Add("Trailer", strings.Join(keys, ", "))
	}
	w.WriteHeader(res.StatusCode)
	if err := p.copyBody(w, res); err != nil {
		res.Body.Close()
		// The client has part of the answer: end its connection so it
		// cannot take the part for the whole (ReverseProxy does the same).
		if in.Context().Value(http.ServerContextKey) != nil {
			panic(http.ErrAbortHandler)
		}
		p.log.Debug("copying response", "target", t.ID, "err", err)
		return
	}
	res.Body.Close()
	if len(res.Trailer) > 0 {
		// A response with trailers must be chunked: flush before the
		// trailers so net/http does not compute a Content-Length.
		_ = http.NewResponseController(w).Flush()
	}
	if len(res.Trailer) == announced {
		copyHeader(w.Header(), res.Trailer)
		return
	}
	for k, vv := range res.Trailer {
		for _, v := range vv {
			w.Header().Add(http.TrailerPrefix+k, v)
		}
	}
}

// outgoing is the request the direct paths send to t for in; ok is false
// for a target not reached over plain HTTP, which is ReverseProxy's.
func (p *Proxy) outgoing(in *http.Request, t Target) (*http.Request, bool) {
	out := &http.Request{Method: in.Method, URL: cloneURL(in.URL), Header: in.Header.Clone(), Host: in.Host}
	if out.Header == nil {
		out.Header = http.Header{}
	}
	prepareOutgoing(in, out)
	pr := &httputil.ProxyRequest{In: in, Out: out}
	p.rewriteTo(pr, t)
	return pr.Out, pr.Out.URL.Scheme == "http"
}

// prepareOutgoing is what ReverseProxy does to the outgoing request before
// its Rewrite hook: hop-by-hop headers dropped (an asked-for "Te: trailers"
// kept), the client's forwarding headers dropped, unparsable query
// parameters removed, and no Go User-Agent added where the client sent none.
func prepareOutgoing(in, out *http.Request) {
	removeHopByHop(out.Header)
	for _, v := range in.Header["Te"] {
		if tokenListContains(v, "trailers") {
			out.Header["Te"] = []string{"trailers"}
			break
		}
	}
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(out.Header, k)
	}
	out.URL.RawQuery = cleanQueryParams(out.URL.RawQuery)
}

// copyBody copies the response body to the client, flushing as ReverseProxy
// would: after every write for server-sent events and responses of unknown
// length (streams), otherwise when the handler ends.
func (p *Proxy) copyBody(w http.ResponseWriter, res *http.Response) error {
	flush := p.cfg.FlushInterval < 0 || res.ContentLength == -1
	if !flush {
		if ct, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); ct == "text/event-stream" {
			flush = true
		}
	}
	bufp := buffers.Get().(*[]byte)
	defer buffers.Put(bufp)
	buf := *bufp
	rc := http.NewResponseController(w)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// writeRequestHead writes out's request line and headers for a request
// without a body, as Request.Write would but without sorting the headers.
func writeRequestHead(bw *bufio.Writer, out *http.Request) error {
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	bw.WriteString(out.Method)
	bw.WriteByte(' ')
	bw.WriteString(out.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(h1.FieldValue(host))
	bw.WriteString("\r\n")
	for k, vv := range out.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // written from the request's fields, or not at all
		}
		for _, v := range vv {
			if k == "User-Agent" && v == "" {
				continue // ReverseProxy's way of sending none
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(h1.FieldValue(v))
			bw.WriteString("\r\n")
		}
	}
	return endRequestHead(bw, out.Method)
}

// endRequestHead ends the head of a request without a body; a method that
// carries one says it has none, as net/http does.
func endRequestHead(bw *bufio.Writer, method string) error {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

func cloneURL(u *url.URL) *url.URL {
	u2 := *u
	if u.User != nil {
		u2.User = new(url.Userinfo)
		*u2.User = *u.User
	}
	return &u2
}

func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		if len(dst[k]) == 0 {
			dst[k] = vv // src is the target's response, not used again
			continue
		}
		dst[k] = append(dst[k], vv...)
	}
}

// hopByHop are the headers meant for one connection only (RFC 9110 7.6.1).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop drops the hop-by-hop headers and those Connection names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				delete(h, textproto.CanonicalMIMEHeaderKey(sf))
			}
		}
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

func tokenListContains(v, token string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(textproto.TrimString(t), token) {
			return true
		}
	}
	return false
}

// cleanQueryParams is ReverseProxy's: a query with a parameter Go cannot
// parse (a semicolon, a broken escape) is re-encoded without it, so the
// target cannot read it differently than the proxy would.
func cleanQueryParams(s string) string {
	reencode := func(s string) string {
		v, _ := url.ParseQuery(s)
		return v.Encode()
	}
	for i := 0; i < len(s); {
		switch s[i] {
		case ';':
			return reencode(s)
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return reencode(s)
			}
			i += 3
		default:
			i++
		}
	}
	return s
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
