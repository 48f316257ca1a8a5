package overhead

import (
	"os"
	"syscall"
)

// sysProcAttr: no orphaned Envoy or Python router if the benchmark is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
