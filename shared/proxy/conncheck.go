package proxy

import "net"

// peekResult is what a look at a connection's socket finds (peek).
type peekResult int

const (
	peekNothing peekResult = iota // nothing to read yet: open and quiet
	peekData                      // bytes are waiting
	peekClosed                    // end of stream or an error: the peer closed or reset it
	peekUnknown                   // not a socket peek can look at
)

// stillOpen reports whether an idle connection to a target is still
// usable: nothing to read yet, rather than end of file (the target closed
// it) or unexpected bytes.
func stillOpen(c net.Conn) bool {
	r := peek(c)
	return r == peekNothing || r == peekUnknown
}

// clientGone reports whether a client has closed or reset its connection;
// bytes it sent ahead (a pipelined request) mean it is still there.
func clientGone(c net.Conn) bool { return peek(c) == peekClosed }
