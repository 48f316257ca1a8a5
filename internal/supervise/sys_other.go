//go:build !unix

package supervise

import (
	"os"
	"syscall"
)

// Without process groups or SIGTERM, Stop can only kill the child itself.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Kill() }

func kill(p *os.Process) error { return p.Kill() }

func killedBySignal(err error) bool { return err != nil }
