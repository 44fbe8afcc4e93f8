package main

import "golang.org/x/sys/windows"

// selfCPU is this process's CPU seconds, kernel and user.
func selfCPU() float64 {
	var created, exited, kernel, user windows.Filetime
	if windows.GetProcessTimes(windows.CurrentProcess(), &created, &exited, &kernel, &user) != nil {
		return 0
	}
	ticks := func(t windows.Filetime) float64 { return float64(uint64(t.HighDateTime)<<32 | uint64(t.LowDateTime)) }
	return (ticks(kernel) + ticks(user)) / 1e7 // 100 ns ticks
}

// floorWrite writes p through the subscriber's connection: a socket is
// no file descriptor here.
func floorWrite(sub *floorSub, p []byte) (int, error) { return sub.conn.Write(p) }
