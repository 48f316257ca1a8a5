package overhead

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/dev/stack"
	"github.com/switchyard/switchyard/internal/supervise"
	"github.com/switchyard/switchyard/internal/testutil/netutil"
)

// The runner, the Go router app and the switchyard stack run as processes of
// their own, like every other hop: in the benchmark's process they would
// share the load generator's Go runtime (its scheduler, its garbage
// collections) and skip the cross-process wake-ups a real hop pays. Run
// starts them by running its own executable again with childEnv set; this
// package's init serves the role named there and exits.
const childEnv = "SWITCHYARD_OVERHEAD_CHILD"

type childSpec struct {
	Role   string `json:"role"` // "runner", "go-router" or "stack"
	Listen string `json:"listen"`
	Small  string `json:"small,omitempty"` // go-router: backend URLs
	Large  string `json:"large,omitempty"`
	Config string `json:"config,omitempty"` // stack: switchyard's config file; Listen is its listener
}

func init() {
	if spec, ok := os.LookupEnv(childEnv); ok {
		if err := runChild(spec); err != nil {
			fmt.Fprintln(os.Stderr, "overhead child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

func runChild(specJSON string) error {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch spec.Role {
	case "runner":
		// The backend of every setup: no inference or load time, no limit.
		srv, err := simrunner.Serve(ctx, spec.Listen, simrunner.Options{Name: "runner"})
		if err != nil {
			return err
		}
		return <-srv.Done
	case "go-router":
		small, err := url.Parse(spec.Small)
		if err != nil {
			return err
		}
		large, err := url.Parse(spec.Large)
		if err != nil {
			return err
		}
		srv := &http.Server{Addr: spec.Listen, Handler: newGoRouter(small, large), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case "stack":
		// switchyard serve and Envoy, exactly as `switchyard up` runs them.
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		st, err := stack.Start(ctx, stack.Options{ConfigPath: spec.Config, EnvoyConcurrency: envoyConcurrency, Log: log, EnvoyLog: os.Stderr})
		if err != nil {
			return err
		}
		werr := st.Wait(ctx)
		return errors.Join(werr, st.Stop())
	}
	return fmt.Errorf("unknown role %q", spec.Role)
}

// child is a runner, Go router or stack process.
type child struct {
	proc *supervise.Process
	addr string
}

func startChild(ctx context.Context, spec childSpec) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if spec.Listen == "" {
		port, err := netutil.FreePort()
		if err != nil {
			return nil, err
		}
		spec.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	b, _ := json.Marshal(spec)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	p, err := supervise.Start(ctx, cmd, supervise.Options{
		Name:         spec.Role,
		Ready:        supervise.Listening(spec.Listen),
		ReadyTimeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return &child{proc: p, addr: spec.Listen}, nil
}

func (c *child) stop() { _ = c.proc.Stop() }
