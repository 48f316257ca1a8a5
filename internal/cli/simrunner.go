package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/switchyard/switchyard/internal/dev/simrunner"
)

// simRunner serves a simulated GPU runner until ctx ends. With --register it
// keeps itself registered with a switchyard admin API and deregisters (the
// edge drains it) before it stops serving.
func simRunner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim-runner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9001", "address to listen on (port 0 picks one)")
	name := fs.String("name", "", "name reported in responses (default: the listen address)")
	slots := fs.Int("slots", 2, "models held at once (LRU)")
	loadTime := fs.Duration("load-time", 2*time.Second, "cost of loading a model that is not held")
	inferTime := fs.Duration("infer-time", 200*time.Millisecond, "inference time of a 1024x1024 image, scaled by width*height")
	maxConc := fs.Int("max-concurrency", 0, "requests served at once (0: no limit)")
	overload := fs.String("overload", simrunner.OverloadQueue, "beyond max-concurrency: queue (wait for a slot) or reject (503)")
	noHints := fs.Bool("no-hints", false, "do not report loaded models in X-Fal-Runner-Hints")
	register := fs.String("register", "", "switchyard admin URL to register with, e.g. http://127.0.0.1:18001")
	pool := fs.String("pool", "", "pool to register in (with --register)")
	ttl := fs.Duration("ttl", 10*time.Second, "registration TTL, renewed every ttl/3 (with --register)")
	access := addAdminAccessFlags(fs, " (with --register)")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	hints := !*noHints
	o := simrunner.Options{
		Name: *name, Slots: *slots, LoadTime: *loadTime, InferTime: *inferTime,
		MaxConcurrency: *maxConc, Overload: *overload, ProvideHints: &hints,
	}
	var problems []error
	if fs.NArg() != 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if err := o.Validate(); err != nil {
		problems = append(problems, err)
	}
	var admin *url.URL
	if *register != "" {
		var err error
		if admin, err = adminURL("register", *register); err != nil {
			problems = append(problems, err)
		}
		if *pool == "" {
			problems = append(problems, errors.New("--register needs --pool"))
		}
		if *ttl <= 0 {
			problems = append(problems, fmt.Errorf("--ttl %v: must be positive", *ttl))
		}
		// The edge reaches the runner at the address it registers.
		if ap, err := netip.ParseAddrPort(*listen); err != nil || ap.Addr().IsUnspecified() {
			problems = append(problems, fmt.Errorf("--register needs --listen as a reachable ip:port, not %q", *listen))
		}
		problems = append(problems, access.problems()...)
	} else if *pool != "" || access.tokenFile != "" {
		problems = append(problems, errors.New("--pool and --token-file need --register"))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		fs.Usage()
		return ErrUsage
	}

	// The server outlives ctx a little: on shutdown the runner deregisters
	// first, so the edge stops sending before the listener goes away.
	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	srv, err := simrunner.Serve(serveCtx, *listen, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sim-runner listening on %s\n", srv.Addr)

	if admin != nil {
		client, err := access.client(*ttl / 3)
		if err != nil {
			stop()
			<-srv.Done
			return err
		}
		reg := &registration{
			url:    admin.JoinPath("v1", "pools", *pool, "runners", srv.Addr.String()),
			ttl:    *ttl,
			access: access,
			client: client,
			log:    slog.New(slog.NewTextHandler(stderr, nil)),
		}
		if err := reg.keep(ctx, srv.Done); err != nil {
			stop()
			<-srv.Done // closed already if the server stopped by itself
			return err
		}
	} else {
		select {
		case <-ctx.Done():
		case err := <-srv.Done:
			return err
		}
	}
	stop()
	return <-srv.Done
}

// registration keeps one runner registered through the admin API.
type registration struct {
	url    *url.URL
	ttl    time.Duration
	access *adminAccess
	client *http.Client
	log    *slog.Logger
}

// errRejected marks an answer that retrying will not change (4xx).
var errRejected = errors.New("registration rejected")

// keep registers now and every ttl/3 until ctx ends, then deregisters and
// returns nil. An admin API that cannot be reached is retried at the next
// beat; a first registration the admin API refuses (unknown pool, bad
// address) is returned, as is the error of a server that stops by itself.
func (r *registration) keep(ctx context.Context, done <-chan error) error {
	if err := r.send(ctx, http.MethodPut); errors.Is(err, errRejected) {
		return err
	} else if err != nil {
		r.log.Warn("registering", "err", err)
	} else {
		r.log.Info("registered", "url", r.url.String(), "ttl", r.ttl)
	}
	tick := time.NewTicker(r.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := r.send(dctx, http.MethodDelete); err != nil {
				r.log.Warn("deregistering", "err", err)
			} else {
				r.log.Info("deregistered", "url", r.url.String())
			}
			return nil
		case err := <-done:
			if err == nil {
				err = errors.New("sim-runner: server stopped")
			}
			return err
		case <-tick.C:
			if err := r.send(ctx, http.MethodPut); err != nil && ctx.Err() == nil {
				r.log.Warn("renewing registration", "err", err)
			}
		}
	}
}

func (r *registration) send(ctx context.Context, method string) error {
	var body io.Reader
	if method == http.MethodPut {
		b, _ := json.Marshal(map[string]float64{"ttl_seconds": r.ttl.Seconds()})
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url.String(), body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := r.access.authorize(req); err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode < 500:
		return fmt.Errorf("%w: %s %s: %s: %s", errRejected, method, r.url, resp.Status, bytes.TrimSpace(msg))
	}
	return fmt.Errorf("%s %s: %s: %s", method, r.url, resp.Status, bytes.TrimSpace(msg))
}
