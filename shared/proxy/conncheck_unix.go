//go:build unix

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// peek looks at c's socket without waiting and without consuming: through
// RawConn.Control, so it works whatever c's read deadline.
func peek(c net.Conn) peekResult {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peekUnknown
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return peekClosed
	}
	res := peekClosed
	var buf [1]byte
	err = raw.Control(func(fd uintptr) {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == nil && n > 0:
			res = peekData
		case rerr == nil: // end of stream
		case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EWOULDBLOCK), errors.Is(rerr, syscall.EINTR):
			res = peekNothing
		}
	})
	if err != nil {
		return peekClosed
	}
	return res
}
