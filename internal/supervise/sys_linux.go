package supervise

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Pdeathsig is best effort: it follows the OS thread that forked the
	// child, and Go may retire a thread that a goroutine locked and left.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
