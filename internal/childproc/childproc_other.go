//go:build !linux

package childproc

import "os/exec"

// DieWithParent does nothing: only Linux kills a child when its parent
// dies. Elsewhere a child outlives a parent that dies before stopping it.
func DieWithParent(*exec.Cmd) {}
