//go:build unix

package redistest

import "syscall"

// The signals Pause and Resume send.
var stopSignal, contSignal = syscall.SIGSTOP, syscall.SIGCONT
