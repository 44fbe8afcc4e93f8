//go:build !((linux || darwin || freebsd || openbsd || netbsd || dragonfly || illumos) && !ios) && !windows

package spool

import "os"

// lockFile takes no lock: the system has no lock a dead process is sure
// to drop (flock(2), LockFileEx). A second hub on the same directory is
// not refused here; each must be given a -spool-dir of its own.
func lockFile(*os.File) error { return nil }
