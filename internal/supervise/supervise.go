package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

const (
	defaultGrace  = 5 * time.Second
	logLimit      = 4 << 20
	tailLines     = 30
	probeInterval = 25 * time.Millisecond
)

// Probe says whether a child is ready: nil when it is, otherwise an error
// saying what is still missing (quoted if the wait runs out). It is called
// from the goroutine that called [Start], every 25ms, and should return
// promptly when ctx ends.
type Probe func(ctx context.Context) error

// Options configure [Start]. The zero value starts the child and returns at
// once.
type Options struct {
	// Name is what error messages call the child; empty means the base name
	// of the command's path.
	Name string
	// Tee, if set, also receives the child's stdout and stderr as they are
	// written. An error from it is ignored: a stalled copy would block the
	// child on a full pipe.
	Tee io.Writer
	// Ready, if set, makes Start wait until it passes.
	Ready Probe
	// ReadyTimeout bounds the wait for Ready; 0 leaves it to Start's context.
	ReadyTimeout time.Duration
	// Grace is how long Stop waits after SIGTERM before SIGKILL; 0 means 5s.
	Grace time.Duration
}

// Process is a child started by [Start].
type Process struct {
	name  string
	cmd   *exec.Cmd
	log   *logBuffer
	grace time.Duration

	done    chan struct{} // closed once the child has exited and been reaped
	waitErr error         // valid once done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start runs cmd as described in the package documentation. Start sets cmd's
// Stdout, Stderr, SysProcAttr and WaitDelay itself, so the caller must leave
// the first three unset. ctx bounds only the start-up: afterwards the child
// runs until [Process.Stop] or until it exits by itself.
func Start(ctx context.Context, cmd *exec.Cmd, o Options) (*Process, error) {
	name := cmp.Or(o.Name, filepath.Base(cmd.Path))
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s not started: %w", name, err)
	}
	if cmd.Stdout != nil || cmd.Stderr != nil || cmd.SysProcAttr != nil {
		return nil, fmt.Errorf("%s not started: supervise.Start sets the command's Stdout, Stderr and SysProcAttr itself", name)
	}
	p := &Process{
		name:  name,
		cmd:   cmd,
		log:   &logBuffer{max: logLimit},
		grace: cmp.Or(o.Grace, defaultGrace),
		done:  make(chan struct{}),
	}
	var out io.Writer = p.log
	if o.Tee != nil {
		out = teeWriter{p.log, o.Tee}
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	// A grandchild that outlives the child and holds the output pipe must
	// not keep Wait, and so Done and Stop, from returning.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s did not start: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if o.Ready == nil {
		return p, nil
	}
	if err := p.waitReady(ctx, o.ReadyTimeout, o.Ready); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%w\n--- last lines of %s's log (%s) ---\n%s", err, name, cmd.Path, p.log.tail(tailLines))
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context, timeout time.Duration, ready Probe) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	last := errors.New("not probed yet")
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up (%s) after %v", p.name, exitDesc(p.waitErr), time.Since(start).Round(time.Millisecond))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v (%w)", p.name, time.Since(start).Round(time.Millisecond), last, context.Cause(ctx))
		default:
		}
		err := ready(ctx)
		if err == nil {
			return nil
		}
		// An attempt cut short by the deadline says only that; the answer
		// before it says why the child was not ready.
		if ctx.Err() == nil {
			last = err
		}
		select {
		case <-p.done:
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// Pid is the child's process id (also its process group id on Unix).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Log returns the child's output so far (the last 4 MiB if it wrote more).
func (p *Process) Log() string { return p.log.String() }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait blocks until the child exits and returns its exit error (nil for
// status 0).
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// Stop asks the child's process group to exit (SIGTERM), kills the group if
// the child has not exited within the grace period, and waits for the child.
// Every call, from any goroutine, returns the same result: nil when the child
// exited cleanly or because of Stop's signals, otherwise the error it exited
// with before Stop (e.g. a crash).
func (p *Process) Stop() error { return p.stop(p.grace) }

// Kill is Stop without the grace period: SIGKILL to the group at once, for
// tests that need the child to die without a chance to clean up. It shares
// Stop's single run and result.
func (p *Process) Kill() error { return p.stop(0) }

func (p *Process) stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			p.stopErr = p.waitErr
			return
		default:
		}
		if grace > 0 {
			_ = terminate(p.cmd.Process)
			select {
			case <-p.done:
			case <-time.After(grace):
			}
		}
		select {
		case <-p.done:
		default:
			_ = kill(p.cmd.Process)
			<-p.done
		}
		if p.waitErr != nil && !killedBySignal(p.waitErr) {
			p.stopErr = p.waitErr
		}
	})
	return p.stopErr
}

func exitDesc(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
