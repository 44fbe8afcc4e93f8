package hub_test

import "syscall"

// setReceiveBuffer sets the socket's receive buffer (SO_RCVBUF) to n
// bytes.
func setReceiveBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
