//go:build unix

package httpx

import (
	"errors"
	"net"
	"syscall"
)

// peerGone peeks at c's socket without waiting: end of stream or an error
// other than "nothing yet" means the peer has closed or reset it. Control,
// not Read: the peek must work whatever c's read deadline (a request may
// outlast the idle timeout). A connection that is not a socket reports
// false: the caller then waits as it would have anyway.
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
	_ = rc.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			gone = n == 0
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		default:
			gone = true
		}
	})
	return gone
}
