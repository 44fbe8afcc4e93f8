//go:build !unix

package redistest

import (
	"os"
)

// stopSignal and contSignal cannot be sent outside Unix: Pause and Resume
// fail the test there, saying so.
var stopSignal, contSignal os.Signal = unsupported{}, unsupported{}

type unsupported struct{}

func (unsupported) String() string { return "SIGSTOP/SIGCONT (Unix only)" }
func (unsupported) Signal()        {}
