//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// stillOpen reports whether an idle connection is still usable: nothing to
// read yet (EAGAIN), rather than end of file (the target closed it) or
// unexpected bytes. It peeks without blocking and without consuming.
func stillOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true // never wait for readability
	})
	return err == nil && open
}
