//go:build unix && !linux

package supervise

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// No Pdeathsig outside Linux: a killed caller can leave the child behind.
	return &syscall.SysProcAttr{Setpgid: true}
}
