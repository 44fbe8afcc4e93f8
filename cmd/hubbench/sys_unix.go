//go:build unix

package main

import "syscall"

// selfCPU is this process's CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// floorWrite writes p to the subscriber's socket with one write(2), past
// Go's poller: the floor does no more than the system must.
func floorWrite(sub *floorSub, p []byte) (int, error) { return syscall.Write(sub.fd, p) }
