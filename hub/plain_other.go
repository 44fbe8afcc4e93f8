//go:build !unix

package hub

import "net"

// waitOnSocket leaves wait to wait inside a read: reading a socket only
// once it is readable, without blocking, is Unix's read(2). Elsewhere a
// connection waits as a TLS connection does everywhere, into a buffer of
// readBufferSize bytes held while it is idle; everything else about it is
// the same.
func (c *plainConn) waitOnSocket(net.Conn) {}
