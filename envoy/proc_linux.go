package envoy

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Own process group: a terminal's SIGINT goes to switchyard only, which
	// then stops Envoy in order. Pdeathsig: no orphaned Envoy if we are killed.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
