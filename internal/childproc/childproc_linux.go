package childproc

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel kill cmd, once started, when the thread
// that started it ends (prctl's PR_SET_PDEATHSIG), as it does when the
// parent dies.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
