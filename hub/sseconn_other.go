//go:build !unix

package hub

import "net"

// waitClosed waits inside a read for the client of conn to close it, or
// for the hub to: only Unix has the non-blocking read(2) that waiting for
// readability takes (see sseconn_unix.go).
func waitClosed(conn net.Conn) error { return readUntilClosed(conn) }
