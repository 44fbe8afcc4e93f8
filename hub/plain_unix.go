//go:build unix

package hub

import (
	"net"
	"syscall"
)

// waitOnSocket has wait wait for the socket to be readable, holding no
// buffer, when it has a raw connection (a TCP or Unix socket, not TLS).
// It takes a non-blocking read(2), which only Unix systems have.
func (c *plainConn) waitOnSocket(raw net.Conn) {
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.rc, c.readable = rc, c.readNow
}

// readNow is wait's callback, called when the socket may be readable: it
// reads what there is without blocking, and asks to wait again if there
// is nothing.
func (c *plainConn) readNow(fd uintptr) bool {
	b := readBufs.Get().(*[]byte)
	var n int
	var err error
	for {
		n, err = syscall.Read(int(fd), *b)
		if err != syscall.EINTR {
			break
		}
	}
	if err == syscall.EAGAIN {
		readBufs.Put(b)
		return false
	}
	c.buf, c.n, c.readErr = b, max(n, 0), err
	return true
}
