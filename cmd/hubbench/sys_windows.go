package main

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// selfCPU is this process's CPU seconds, kernel and user.
func selfCPU() float64 {
	var created, exited, kernel, user windows.Filetime
	if windows.GetProcessTimes(windows.CurrentProcess(), &created, &exited, &kernel, &user) != nil {
		return 0
	}
	ticks := func(t windows.Filetime) float64 { return float64(uint64(t.HighDateTime)<<32 | uint64(t.LowDateTime)) }
	return (ticks(kernel) + ticks(user)) / 1e7 // 100 ns ticks
}

// raiseFileLimit does nothing: Windows sets no limit on open sockets to
// raise.
func raiseFileLimit() {}

// floorWrite writes p through the subscriber's connection: a socket is
// no file descriptor here.
func floorWrite(sub *floorSub, p []byte) (int, error) { return sub.conn.Write(p) }

// setReceiveBuffer sets a socket's receive buffer (SO_RCVBUF) to n bytes.
func setReceiveBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
