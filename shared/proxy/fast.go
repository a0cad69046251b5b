package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/atrium-suite/atrium/shared/h1"
)

// ConnWriter is a ResponseWriter the proxy may write the target's
// response to as bytes, straight onto the client connection, instead of
// parsing it into an http.Response and writing that back through the
// ResponseWriter: shared/httpx's fast path implements it. The response
// head is copied line by line from the target's (validated, hop-by-hop
// headers dropped, the framing rewritten), so no header map is built on
// the way back.
type ConnWriter interface {
	http.ResponseWriter
	// RawConn returns the client connection's buffered writer, or nil when
	// the response has begun already. Headers set on the ResponseWriter
	// before (a request id) are the proxy's to write.
	RawConn() *bufio.Writer
	// RawClose reports whether the response must end the connection (the
	// client asked to, or the server is shutting down); the proxy asks
	// right before it writes the head and then says Connection: close.
	RawClose() bool
	// RawDone reports the response the proxy wrote: its status, body
	// bytes, and whether the connection can carry another request.
	RawDone(status int, bodyBytes int64, keepAlive bool)
	// ClientConn is the client's connection, for the proxy to look at
	// whether the client is still there while an answer is slow (peek);
	// it never reads from it or writes to it.
	ClientConn() net.Conn
}

// clientCheck is how long the fast path waits for a target's answer before
// it looks whether the client is still there, and how often after that.
// net/http's path learns of a departed client from a read it keeps running
// on the client's connection, which cancels the request; the fast path
// runs no such read (it would cost a wake-up per request), so it cuts a
// slow target's wait into slices instead. A client that has gone ends the
// exchange: the target sees its connection close, as on the other path.
const clientCheck = time.Second

// errClientGone ends an exchange whose client left while the target was
// still working on the answer.
var errClientGone = errors.New("proxy: the client closed its connection")

// maxRawHead bounds a response head (the size of a target connection's
// read buffer); a target sending a larger one gets a 502.
const maxRawHead = 16 << 10

// ServeFast serves a request shared/httpx's fast path parsed (see package
// h1) on w, which must be a ConnWriter: the request head's lines are
// copied to the target with the proxy's changes (hop-by-hop and forwarding
// headers replaced, Atrium's cookies dropped, the prefix stripped when
// configured), and the response is copied back as bytes. extra are request
// headers the caller sets for the target, replacing any the client sent
// under those names (Connect's RStudio-Connect-Credentials); a name without
// values is only removed.
//
// It returns false, having written nothing, for a request ServeHTTP must
// serve: outside the prefix or its redirect, a proxy with a Headers hook,
// TrustForwarded, a FlushInterval or its own Transport, a target with a
// path or another scheme, or a balancer that is not a StickyBalancer.
func (p *Proxy) ServeFast(w http.ResponseWriter, r *h1.Request, extra http.Header) bool {
	cw, ok := w.(ConnWriter)
	if !ok || p.pool == nil || p.sticky == nil || p.cfg.Headers != nil || p.cfg.TrustForwarded ||
		!strings.HasPrefix(r.Path, p.prefix) {
		return false
	}
	bw := cw.RawConn()
	if bw == nil {
		return false
	}
	val, has := r.Cookie(p.sticky.cookie)
	e, carried, err := p.admitAndPick(r.Ctx, val, has)
	if err != nil {
		if req, ok := r.HTTPRequest(); ok {
			p.pickFailed(w, req, r.Path, err)
			return true
		}
		return false
	}
	if p.admit != nil {
		defer p.admit.Done()
	}
	defer e.inflight.Add(-1)
	t := e.t
	if t.URL.Scheme != "http" || t.URL.Path != "" || t.URL.RawQuery != "" {
		return false
	}
	if !carried {
		if h := w.Header(); h["Set-Cookie"] == nil {
			// Shared, not copied: its capacity of one makes any append
			// elsewhere copy it first, and header writers only read it.
			h["Set-Cookie"] = e.setCookie[:1:1]
		} else {
			h["Set-Cookie"] = append(h["Set-Cookie"], e.setCookie[0])
		}
	}
	write := func(bw *bufio.Writer) error { return p.writeFastHead(bw, r, extra) }
	replay := replayableMethod(r.Method) || hasHeader(r, "Idempotency-Key") || hasHeader(r, "X-Idempotency-Key")
	err = p.pool.do(r.Ctx, t.URL.Host, replay, func(bc *backendConn) (bool, error) {
		return p.exchangeRaw(r.Ctx, cw, bw, bc, r.Method, write, replay)
	})
	if err != nil {
		if req, ok := r.HTTPRequest(); ok {
			p.backendErrorFor(w, req, t, err)
		} else {
			cw.RawDone(http.StatusBadGateway, 0, false)
		}
	}
	return true
}

func hasHeader(r *h1.Request, name string) bool {
	_, ok := r.Header(name)
	return ok
}

// statusClientClosed is what the request log says of a request whose
// client left before the answer came (nginx's 499).
const statusClientClosed = 499

// awaitAnswer waits until the target's answer begins (its first byte is in
// bc's buffer), looking every clientCheck whether the client has gone; it
// then returns errClientGone.
//
// The read deadline that slices the wait is left on the connection when
// the answer comes, and is set again only when less than half of
// clientCheck remains: under load every request would otherwise set it
// and clear it, two timer updates that showed in the proxy's profile. Any
// read that may wait after it (a head or body not yet all buffered, the
// other path's exchange) clears it first (bc.waitFreely).
func awaitAnswer(ctx context.Context, cw ConnWriter, bc *backendConn) error {
	if bc.br.Buffered() > 0 {
		return nil
	}
	for {
		if now := time.Now(); bc.readDeadline.Sub(now) < clientCheck/2 {
			// Setting a deadline may undo watch's (a deadline in the
			// past: the server is shutting down), hence the check of ctx
			// after.
			bc.readDeadline = now.Add(clientCheck)
			_ = bc.conn.SetReadDeadline(bc.readDeadline)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := bc.br.Peek(1)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
			return err
		}
		if clientGone(cw.ClientConn()) {
			return errClientGone
		}
	}
}

// waitFreely clears awaitAnswer's read deadline before a read that may
// wait for the target longer than it allows; a deadline in the past that
// watch set (ctx ended) is put back.
func (bc *backendConn) waitFreely(ctx context.Context) {
	if bc.readDeadline.IsZero() {
		return
	}
	bc.readDeadline = time.Time{}
	_ = bc.conn.SetReadDeadline(time.Time{})
	if ctx.Err() != nil {
		_ = bc.conn.SetDeadline(aLongTimeAgo) // watch's, kept
	}
}

// writeFastHead writes the request line and headers the target gets for
// r: what rewriteTo gives the other paths, from the client's lines.
func (p *Proxy) writeFastHead(bw *bufio.Writer, r *h1.Request, extra http.Header) error {
	path := r.Path
	if p.cfg.StripPrefix {
		path = path[len(p.base):] // keeps the leading "/"
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(path)
	if r.Query != "" {
		bw.WriteByte('?')
		bw.WriteString(r.Query)
	}
	bw.WriteString(" HTTP/1.1\r\n")
	for name, value := range r.Headers() {
		switch {
		case isHopByHop(name) || isForwarding(name) || extraNamed(extra, name):
			if h1.EqualFold(name, "Te") && tokenListContains(string(value), "trailers") {
				bw.WriteString("Te: trailers\r\n")
			}
			continue
		case h1.EqualFold(name, "Cookie") && bytes.Contains(value, []byte("atrium_")):
			value = withoutAtriumCookies(value)
			if len(value) == 0 {
				continue
			}
		}
		writeLine(bw, name, value)
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-Host: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Prefix: ")
	bw.WriteString(p.base)
	bw.WriteString("\r\n")
	writeHeaderMap(bw, extra)
	return endRequestHead(bw, r.Method)
}

// isForwarding matches the forwarding headers the proxy sets itself.
func isForwarding(name []byte) bool {
	return h1.EqualFold(name, "Forwarded") || h1.EqualFold(name, "X-Forwarded-For") ||
		h1.EqualFold(name, "X-Forwarded-Host") || h1.EqualFold(name, "X-Forwarded-Proto") ||
		h1.EqualFold(name, "X-Forwarded-Prefix")
}

func extraNamed(extra http.Header, name []byte) bool {
	for k := range extra {
		if h1.EqualFold(name, k) {
			return true
		}
	}
	return false
}

// withoutAtriumCookies is a Cookie value without the suite's own cookies
// (dropAtriumCookies for one line).
func withoutAtriumCookies(v []byte) []byte {
	var kept []byte
	for len(v) > 0 {
		var pair []byte
		pair, v, _ = bytes.Cut(v, []byte(";"))
		pair = bytes.TrimSpace(pair)
		if len(pair) == 0 || bytes.HasPrefix(pair, []byte("atrium_")) {
			continue
		}
		if len(kept) > 0 {
			kept = append(kept, "; "...)
		}
		kept = append(kept, pair...)
	}
	return kept
}

// rawHead is what exchangeRaw found in a response head.
type rawHead struct {
	status  int
	length  int64 // Content-Length, -1 when none
	chunked bool
	close   bool     // the target closes the connection after this response
	dropped []string // headers the target's Connection header names
	stream  bool     // text/event-stream: flushed as it comes
}

// exchangeRaw sends out on bc and copies the response to bw. An error
// before anything reached the client is returned (retry as in exchange);
// after that, failures end the client's connection through RawDone.
func (p *Proxy) exchangeRaw(ctx context.Context, cw ConnWriter, bw *bufio.Writer, bc *backendConn, method string, write func(*bufio.Writer) error, replay bool) (retry bool, err error) {
	stop := watch(ctx, bc)
	fail := func(err error, retry bool) (bool, error) {
		if !stop() || ctx.Err() != nil {
			return false, ctx.Err()
		}
		return retry, err
	}
	if err := write(bc.bw); err != nil {
		return fail(fmt.Errorf("proxy: write request: %w", err), true)
	}
	if err := bc.bw.Flush(); err != nil {
		return fail(fmt.Errorf("proxy: write request: %w", err), true)
	}
	// The app has not answered yet: let other goroutines run before
	// reading, so the read usually finds the answer instead of failing and
	// parking on the poller (see httpx's front, which does the same).
	runtime.Gosched()
	if err := awaitAnswer(ctx, cw, bc); err != nil {
		if errors.Is(err, errClientGone) {
			stop()
			cw.RawDone(statusClientClosed, 0, false)
			bc.conn.Close()
			return false, nil
		}
		return fail(fmt.Errorf("proxy: read response: %w", err), replay)
	}
	var h rawHead
	var head []byte
	for n := 0; ; n++ {
		if buf, _ := bc.br.Peek(bc.br.Buffered()); h1.HeadLength(buf) <= 0 {
			bc.waitFreely(ctx) // the rest of the head is still to come
		}
		head, err = h1.PeekHead(bc.br, nil)
		if err != nil {
			return fail(fmt.Errorf("proxy: read response: %w", err), false)
		}
		h, err = scanResponseHead(head)
		if err != nil {
			return fail(fmt.Errorf("proxy: read response: %w", err), false)
		}
		if h.status >= 200 {
			break
		}
		if h.status == http.StatusSwitchingProtocols {
			return fail(errors.New("proxy: 101 Switching Protocols to a request that asked for no upgrade"), false)
		}
		if n == max1xx {
			return fail(errors.New("proxy: too many 1xx responses"), false)
		}
		// An informational response goes to the client as it came.
		writeHeadLines(bw, head, &h, nil)
		bw.WriteString("\r\n")
		_, _ = bc.br.Discard(len(head))
		if err := bw.Flush(); err != nil {
			stop()
			cw.RawDone(h.status, 0, false)
			bc.conn.Close()
			return false, nil
		}
	}
	// From here on the client gets the response; errors end connections.
	noBody := method == http.MethodHead || h.status == http.StatusNoContent || h.status == http.StatusNotModified
	clientClose := cw.RawClose()
	writeHeadLines(bw, head, &h, cw.Header())
	chunkedOut := false
	switch {
	case h.length >= 0 && !h.chunked:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(h.length, 10))
		bw.WriteString("\r\n")
	case !noBody:
		chunkedOut = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if clientClose {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	_, _ = bc.br.Discard(len(head))
	if !noBody && (h.chunked || h.length < 0 || h.length > int64(bc.br.Buffered())) {
		bc.waitFreely(ctx) // the body is still to come
	}

	flush := p.cfg.FlushInterval < 0 || h.stream
	var written int64
	var cerr error // copying failed: both connections end
	switch {
	case noBody:
		// HEAD, 204 and 304 have no body, whatever the head says.
	case h.chunked:
		written, cerr = copyChunked(bw, bc.br)
	case h.length >= 0:
		written, cerr = copyN(bw, bc.br, h.length, flush)
	default:
		// No length: the body ends when the target closes the connection.
		written, cerr = copyUntilEOF(bw, bc.br)
		h.close = true
	}
	if cerr == nil && chunkedOut && !h.chunked {
		bw.WriteString("0\r\n\r\n")
	}
	if cerr == nil {
		cerr = bw.Flush()
	}
	if cerr != nil {
		p.log.Debug("copying response", "err", cerr)
		bc.conn.Close()
		stop()
		cw.RawDone(h.status, written, false)
		return false, nil
	}
	p.pool.release(bc, stop, !h.close)
	cw.RawDone(h.status, written, !clientClose)
	return false, nil
}

var errMalformed = errors.New("malformed response head")

// scanResponseHead reads what the proxy needs from a response head and
// checks every header line, so that what is copied to the client is well
// formed: a status line "HTTP/1.x NNN reason", then "Name: value" lines
// with a token name and a value without control characters.
func scanResponseHead(head []byte) (rawHead, error) {
	h := rawHead{length: -1}
	first := true
	http10, keepAlive := false, false
	for rest := head; len(rest) > 0; {
		var line []byte
		line, rest = h1.NextLine(rest)
		if first {
			first = false
			if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (line[7] != '0' && line[7] != '1') ||
				line[8] != ' ' || (len(line) > 12 && line[12] != ' ') || !validReason(line[12:]) {
				return h, fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
			}
			code, err := strconv.Atoi(string(line[9:12]))
			if err != nil || code < 100 {
				return h, fmt.Errorf("%w: status line %q", errMalformed, truncate(line))
			}
			h.status = code
			http10 = line[7] == '0'
			continue
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := h1.SplitHeaderLine(line)
		if !ok {
			return h, fmt.Errorf("%w: header line %q", errMalformed, truncate(line))
		}
		switch {
		case h1.EqualFold(name, "Content-Length"):
			n, ok := parseLength(value)
			if !ok || (h.length >= 0 && h.length != n) {
				return h, fmt.Errorf("%w: Content-Length %q", errMalformed, truncate(value))
			}
			h.length = n
		case h1.EqualFold(name, "Transfer-Encoding"):
			if !h1.EqualFold(value, "chunked") || h.chunked || http10 {
				return h, fmt.Errorf("%w: Transfer-Encoding %q", errMalformed, truncate(value))
			}
			h.chunked = true
		case h1.EqualFold(name, "Connection"):
			for tok := range strings.SplitSeq(string(value), ",") {
				switch tok = h1.TrimOWS(tok); {
				case h1.EqualFold(tok, "close"):
					h.close = true
				case h1.EqualFold(tok, "keep-alive"):
					keepAlive = true
				case tok != "":
					h.dropped = append(h.dropped, tok)
				}
			}
		case h1.EqualFold(name, "Content-Type"):
			h.stream = len(value) >= 17 && h1.EqualFold(value[:17], "text/event-stream")
		}
	}
	if http10 && !keepAlive {
		h.close = true // an HTTP/1.0 target closes unless it says otherwise
	}
	if h.status >= 200 && h.status != http.StatusSwitchingProtocols && h.chunked {
		h.length = -1
	}
	return h, nil
}

// validReason accepts a status line's reason phrase (with its leading
// space): tabs, spaces, visible and non-ASCII bytes, nothing that could
// end the line.
func validReason(r []byte) bool {
	for _, c := range r {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// writeHeadLines copies the status line and the end-to-end header lines of
// head to bw, then extra's headers (the client-facing ones the proxy and
// server set). Framing and hop-by-hop headers are left out.
func writeHeadLines(bw *bufio.Writer, head []byte, h *rawHead, extra http.Header) {
	first := true
	for rest := head; len(rest) > 0; {
		var line []byte
		line, rest = h1.NextLine(rest)
		if first {
			first = false
			bw.WriteString("HTTP/1.1")
			bw.Write(line[8:])
			bw.WriteString("\r\n")
			continue
		}
		if len(line) == 0 {
			break
		}
		name, value, _ := h1.SplitHeaderLine(line)
		if isHopByHop(name) || h1.EqualFold(name, "Content-Length") || droppedBy(h.dropped, name) {
			continue
		}
		writeLine(bw, name, value)
	}
	writeHeaderMap(bw, extra)
}

// writeLine writes one header line of a head being copied; name and value
// are checked already (h1.SplitHeaderLine).
func writeLine(bw *bufio.Writer, name, value []byte) {
	bw.Write(name)
	bw.WriteString(": ")
	bw.Write(value)
	bw.WriteString("\r\n")
}

// writeHeaderMap writes the headers the proxy or server set (extra request
// headers, a request id, the affinity cookie) as header lines, skipping a
// name that is not a token and cleaning each value (h1.FieldValue).
func writeHeaderMap(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(h1.FieldValue(v))
			bw.WriteString("\r\n")
		}
	}
}

func isHopByHop(name []byte) bool {
	for _, k := range hopByHop {
		if h1.EqualFold(name, k) {
			return true
		}
	}
	return false
}

func droppedBy(dropped []string, name []byte) bool {
	for _, d := range dropped {
		if h1.EqualFold(name, d) {
			return true
		}
	}
	return false
}

func parseLength(s []byte) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

// copyN copies n body bytes from br to bw, flushing after each read when
// flush is set.
func copyN(bw *bufio.Writer, br *bufio.Reader, n int64, flush bool) (int64, error) {
	var done int64
	for done < n {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				return done, unexpectedEOF(err)
			}
		}
		buf, _ := br.Peek(int(min(int64(br.Buffered()), n-done)))
		m, err := bw.Write(buf)
		done += int64(m)
		_, _ = br.Discard(m)
		if err != nil {
			return done, err
		}
		if flush {
			if err := bw.Flush(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// maxChunkLine bounds a chunk-size line (with extensions) and a trailer
// line.
const maxChunkLine = 4 << 10

// copyChunked decodes a chunked body from br and writes it chunked to bw,
// each chunk flushed as it comes (a chunked response is a stream), then
// the trailers. Chunk extensions are dropped, as net/http drops them.
func copyChunked(bw *bufio.Writer, br *bufio.Reader) (int64, error) {
	var total int64
	for {
		line, err := readLine(br)
		if err != nil {
			return total, err
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		size, err := strconv.ParseInt(string(line), 16, 64)
		if err != nil || size < 0 || len(line) == 0 {
			return total, fmt.Errorf("%w: chunk size %q", errMalformed, truncate(line))
		}
		if size == 0 {
			break
		}
		bw.WriteString(strconv.FormatInt(size, 16))
		bw.WriteString("\r\n")
		n, err := copyN(bw, br, size, false)
		total += n
		if err != nil {
			return total, err
		}
		bw.WriteString("\r\n")
		if crlf, err := readLine(br); err != nil || len(crlf) != 0 {
			return total, fmt.Errorf("%w: no line break after a chunk", errMalformed)
		}
		if err := bw.Flush(); err != nil {
			return total, err
		}
	}
	bw.WriteString("0\r\n")
	for {
		line, err := readLine(br)
		if err != nil {
			return total, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := h1.SplitHeaderLine(line)
		if !ok {
			return total, fmt.Errorf("%w: trailer %q", errMalformed, truncate(line))
		}
		if isHopByHop(name) || h1.EqualFold(name, "Content-Length") {
			continue
		}
		writeLine(bw, name, value)
	}
	bw.WriteString("\r\n")
	return total, nil
}

// readLine reads one line without its line break.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxChunkLine {
		return nil, fmt.Errorf("%w: line too long", errMalformed)
	}
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// copyUntilEOF copies a body that ends with the connection, chunked to
// the client, a chunk per read.
func copyUntilEOF(bw *bufio.Writer, br *bufio.Reader) (int64, error) {
	var total int64
	for {
		if _, err := br.Peek(1); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		buf, _ := br.Peek(br.Buffered())
		bw.WriteString(strconv.FormatInt(int64(len(buf)), 16))
		bw.WriteString("\r\n")
		bw.Write(buf)
		bw.WriteString("\r\n")
		total += int64(len(buf))
		_, _ = br.Discard(len(buf))
		if err := bw.Flush(); err != nil {
			return total, err
		}
	}
}
