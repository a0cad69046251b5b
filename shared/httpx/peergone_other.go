//go:build !unix

package httpx

import "net"

// peerGone cannot peek at a socket here; the caller waits as it would
// have anyway.
func peerGone(net.Conn) bool { return false }
