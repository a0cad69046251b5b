//go:build unix

package httpx

import (
	"errors"
	"net"
	"syscall"
)

// peerGone peeks at c's socket without waiting: end of stream or an error
// other than "nothing yet" means the peer has closed or reset it. A
// connection whose read deadline has passed, or that is not a socket,
// reports false: the caller then waits as it would have anyway.
func peerGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			gone = n == 0
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		default:
			gone = true
		}
		return true // never wait for the socket to become readable
	})
	return gone
}
