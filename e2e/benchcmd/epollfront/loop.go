//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// bufSize bounds a request head and a whole response (head and body): the
// benchmark's are well under it; a larger one is answered 502.
const bufSize = 64 << 10

// New opens a listening socket per loop (SO_REUSEPORT: the kernel spreads
// connections over them, as over nginx's workers) and starts the loops.
// They run until the process exits.
func New(cfg Config) (*Proxy, error) {
	if cfg.Loops < 1 {
		return nil, fmt.Errorf("loops: %d, want at least 1", cfg.Loops)
	}
	if len(cfg.Backends) == 0 {
		return nil, errors.New("no backend")
	}
	if cfg.Strip != "" && (cfg.Strip[0] != '/' || cfg.Strip[len(cfg.Strip)-1] != '/') {
		return nil, fmt.Errorf("strip %q: want a path that starts and ends with /", cfg.Strip)
	}
	la, err := sockaddr(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	var bes []*unix.SockaddrInet4
	for _, b := range cfg.Backends {
		sa, err := sockaddr(b)
		if err != nil {
			return nil, fmt.Errorf("backend: %w", err)
		}
		bes = append(bes, sa)
	}
	var loops []*loop
	for i := range cfg.Loops {
		lfd, err := listenSocket(la)
		if err != nil {
			return nil, err
		}
		if i == 0 && la.Port == 0 {
			// The other loops' sockets share the port the first got.
			sa, err := unix.Getsockname(lfd)
			if err != nil {
				return nil, fmt.Errorf("getsockname: %w", err)
			}
			la.Port = sa.(*unix.SockaddrInet4).Port
		}
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("epoll: %w", err)
		}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
			return nil, fmt.Errorf("epoll: %w", err)
		}
		loops = append(loops, &loop{
			ep: ep, lfd: lfd, strip: []byte(cfg.Strip), backends: bes,
			conns: map[int]*conn{}, free: make([][]*conn, len(bes)), scratch: make([]byte, 0, bufSize),
		})
	}
	for _, l := range loops {
		go l.run()
	}
	return &Proxy{addr: net.JoinHostPort(net.IP(la.Addr[:]).String(), strconv.Itoa(la.Port))}, nil
}

func sockaddr(hostport string) (*unix.SockaddrInet4, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host).To4()
	n, err := strconv.Atoi(port)
	if ip == nil || err != nil || n < 0 || n > 65535 {
		return nil, fmt.Errorf("%q: want an IPv4 address and a port", hostport)
	}
	sa := &unix.SockaddrInet4{Port: n}
	copy(sa.Addr[:], ip)
	return sa, nil
}

func listenSocket(la *unix.SockaddrInet4) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt: %w", err)
		}
	}
	if err := unix.Bind(fd, la); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen: %w", err)
	}
	return fd, nil
}

// loop is one event loop: its listening socket, its clients, and its own
// kept-alive backend connections.
type loop struct {
	ep, lfd  int
	strip    []byte
	backends []*unix.SockaddrInet4
	conns    map[int]*conn
	free     [][]*conn // idle backend connections, per backend
	next     int       // the backend the next request goes to
	scratch  []byte    // the request head being written to a backend
}

// conn is a client connection, or a backend connection (backend >= 0).
type conn struct {
	fd         int
	backend    int
	remote     string // a client's address, for X-Forwarded-For
	peer       *conn  // the other end of the request in flight
	buf        []byte // bytes read and not yet used
	closeAfter bool   // a client asked for Connection: close
	closed     bool
}

func (l *loop) run() {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 512)
	for {
		n, err := unix.EpollWait(l.ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "epollfront: epoll_wait: %v\n", err)
			os.Exit(1)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == l.lfd {
				l.accept()
				continue
			}
			// A connection closed earlier in this batch is gone from
			// conns; if its number was reused since, the read below
			// finds nothing (EAGAIN) and waits.
			if c := l.conns[fd]; c != nil {
				l.readable(c)
			}
		}
	}
}

func (l *loop) accept() {
	for {
		fd, sa, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: no more; anything else: try again at the next event
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		c := &conn{fd: fd, backend: -1, buf: make([]byte, 0, bufSize)}
		if sa4, ok := sa.(*unix.SockaddrInet4); ok {
			c.remote = net.IP(sa4.Addr[:]).String()
		}
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			unix.Close(fd)
			continue
		}
		l.conns[fd] = c
	}
}

// readable reads what c has and acts on it.
func (l *loop) readable(c *conn) {
	if len(c.buf) == cap(c.buf) {
		l.fail(c) // a head or response larger than the buffer
		return
	}
	n, err := unix.Read(c.fd, c.buf[len(c.buf):cap(c.buf)])
	if err == unix.EAGAIN {
		return
	}
	if err != nil || n <= 0 {
		l.fail(c)
		return
	}
	c.buf = c.buf[:len(c.buf)+n]
	if c.backend < 0 {
		l.request(c)
	} else {
		l.response(c)
	}
}

var (
	crlf        = []byte("\r\n")
	badGateway  = []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	notDone     = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	hopByHop    = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "TE", "Trailer"}
	forwardings = []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"}
)

// request sends the client's next complete request head to a backend, if
// none is in flight.
func (l *loop) request(c *conn) {
	if c.peer != nil {
		return // the answer to the one before is still to come
	}
	end := bytes.Index(c.buf, []byte("\r\n\r\n"))
	if end < 0 {
		return
	}
	head := c.buf[:end+2]
	out, ok := l.rewrite(c, head)
	if !ok {
		l.answer(c, notDone, true)
		return
	}
	b := l.backendConn()
	if b == nil {
		l.answer(c, badGateway, true)
		return
	}
	if n, err := unix.Write(b.fd, out); err != nil || n != len(out) {
		l.close(b)
		l.answer(c, badGateway, true)
		return
	}
	c.buf = c.buf[:copy(c.buf, c.buf[end+4:])]
	c.peer, b.peer = b, c
}

// rewrite is the head the backend gets: the prefix stripped, hop-by-hop
// and forwarding headers replaced, as nginx's proxy_set_header lines in
// the benchmark's configuration. Requests with a body are refused.
func (l *loop) rewrite(c *conn, head []byte) ([]byte, bool) {
	line, rest, _ := bytes.Cut(head, crlf)
	method, line, ok1 := bytes.Cut(line, []byte(" "))
	target, version, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || !bytes.HasPrefix(version, []byte("HTTP/1.")) {
		return nil, false
	}
	if len(l.strip) > 0 && bytes.HasPrefix(target, l.strip) {
		target = target[len(l.strip)-1:] // from the prefix's last "/"
	}
	out := append(l.scratch[:0], method...)
	out = append(out, ' ')
	out = append(out, target...)
	out = append(out, " HTTP/1.1\r\n"...)
	var host []byte
	c.closeAfter = bytes.Equal(version, []byte("HTTP/1.0"))
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, crlf)
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return nil, false
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalsAny(name, "Content-Length") && !bytes.Equal(value, []byte("0")),
			equalsAny(name, "Transfer-Encoding"):
			return nil, false
		case equalsAny(name, "Connection"):
			c.closeAfter = bytes.EqualFold(value, []byte("close"))
			continue
		case equalsAny(name, hopByHop...), equalsAny(name, forwardings...):
			continue
		case equalsAny(name, "Host"):
			host = value
		}
		out = append(out, h...)
		out = append(out, crlf...)
	}
	out = append(out, "X-Forwarded-For: "...)
	out = append(out, c.remote...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, host...)
	out = append(out, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
	l.scratch = out
	return out, true
}

func equalsAny(name []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(name, []byte(n)) {
			return true
		}
	}
	return false
}

// response passes a backend's complete answer to its client and puts the
// backend connection back in the pool.
func (l *loop) response(b *conn) {
	c := b.peer
	if c == nil {
		l.close(b) // bytes nobody asked for
		return
	}
	end := bytes.Index(b.buf, []byte("\r\n\r\n"))
	if end < 0 {
		return
	}
	length, ok := contentLength(b.buf[:end+2])
	if !ok {
		l.close(b)
		l.answer(c, badGateway, true)
		return
	}
	total := end + 4 + length
	if total > cap(b.buf) {
		l.close(b)
		l.answer(c, badGateway, true)
		return
	}
	if len(b.buf) < total {
		return
	}
	extra := len(b.buf) > total
	c.peer, b.peer = nil, nil
	l.answer(c, b.buf[:total], c.closeAfter)
	b.buf = b.buf[:0]
	if extra {
		l.close(b)
	} else {
		l.free[b.backend] = append(l.free[b.backend], b)
	}
	if !c.closed {
		l.request(c) // a pipelined request may be waiting
	}
}

// contentLength is the head's Content-Length; a response without one
// (chunked, or ending with the connection) is not handled here.
func contentLength(head []byte) (int, bool) {
	_, rest, _ := bytes.Cut(head, crlf)
	for len(rest) > 0 {
		var h []byte
		h, rest, _ = bytes.Cut(rest, crlf)
		name, value, _ := bytes.Cut(h, []byte(":"))
		if equalsAny(name, "Transfer-Encoding") {
			return 0, false
		}
		if equalsAny(name, "Content-Length") {
			n, err := strconv.Atoi(string(bytes.TrimSpace(value)))
			return n, err == nil && n >= 0
		}
	}
	return 0, false
}

// answer writes p to the client. A write the socket does not take whole
// ends the connection: the benchmark's answers are far smaller than a
// socket's buffer, and waiting for it to drain is machinery this
// reference leaves out.
func (l *loop) answer(c *conn, p []byte, closeAfter bool) {
	if n, err := unix.Write(c.fd, p); err != nil || n != len(p) || closeAfter {
		l.close(c)
	}
}

// backendConn is an idle connection to the next backend, or a new one.
// The connect is a blocking one: on loopback it completes at once, and
// only the first requests of a run open connections.
func (l *loop) backendConn() *conn {
	i := l.next
	l.next = (l.next + 1) % len(l.backends)
	for k := len(l.free[i]); k > 0; k = len(l.free[i]) {
		b := l.free[i][k-1]
		l.free[i] = l.free[i][:k-1]
		if !b.closed {
			return b
		}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := unix.Connect(fd, l.backends[i]); err != nil {
		unix.Close(fd)
		return nil
	}
	_ = unix.SetNonblock(fd, true)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		return nil
	}
	b := &conn{fd: fd, backend: i, buf: make([]byte, 0, bufSize)}
	l.conns[fd] = b
	return b
}

// fail ends c after a read error, end of file or overflow: a client's
// backend connection in flight goes with it (its answer has nowhere to
// go), a backend's client gets a 502.
func (l *loop) fail(c *conn) {
	p := c.peer
	l.close(c)
	if p == nil {
		return
	}
	p.peer = nil
	if c.backend < 0 {
		l.close(p)
	} else {
		l.answer(p, badGateway, true)
	}
}

func (l *loop) close(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	if c.peer != nil {
		c.peer.peer = nil
		c.peer = nil
	}
	delete(l.conns, c.fd)
	unix.Close(c.fd) // also takes it out of the epoll set
}
