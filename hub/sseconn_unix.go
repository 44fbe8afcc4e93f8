//go:build unix

package hub

import (
	"io"
	"net"
	"syscall"
)

// waitClosed waits for the client of conn to close it, or for the hub to,
// dropping anything the client sends. On a raw socket it waits for
// readability, as plainConn does, with no read parked and no buffer held
// while the stream is idle; other connections wait inside a read.
func waitClosed(conn net.Conn) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return readUntilClosed(conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return readUntilClosed(conn)
	}
	var readErr error
	err = rc.Read(func(fd uintptr) bool {
		var b [128]byte
		for {
			n, err := syscall.Read(int(fd), b[:])
			switch {
			case err == syscall.EINTR:
			case err == syscall.EAGAIN:
				return false
			case err != nil:
				readErr = err
				return true
			case n == 0:
				readErr = io.EOF
				return true
			}
		}
	})
	if err != nil {
		return err
	}
	return readErr
}
