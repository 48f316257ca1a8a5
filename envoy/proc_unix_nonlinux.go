//go:build unix && !linux

package envoy

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Own process group: a terminal's SIGINT goes to switchyard only, which
	// then stops Envoy in order.
	return &syscall.SysProcAttr{Setpgid: true}
}
