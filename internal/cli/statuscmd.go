package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/config"
)

// statusCmd prints the admin API's status (GET /debug/status) as tables,
// once or, with --watch, redrawn until ctx ends.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminFlag := fs.String("admin", "", "admin API URL (default: --config's server.admin, else http://"+config.DefaultAdmin+")")
	cfgPath := fs.String("config", "", "config file whose server.admin (and admin_tls) name the admin API")
	watch := fs.Bool("watch", false, "redraw every --interval until interrupted")
	interval := fs.Duration("interval", 2*time.Second, "how often --watch redraws")
	access := addAdminAccessFlags(fs, "")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval %v: must be positive", *interval)
	}
	base, err := statusURL(*adminFlag, *cfgPath)
	if err != nil {
		return err
	}
	if p := access.problems(); len(p) > 0 {
		return errors.Join(p...)
	}
	client, err := access.client(10 * time.Second)
	if err != nil {
		return err
	}
	fetch := func() (admin.Status, error) { return fetchStatus(ctx, client, base, access) }
	if !*watch {
		st, err := fetch()
		if err != nil {
			return err
		}
		renderStatus(stdout, st)
		return nil
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		st, err := fetch()
		fmt.Fprint(stdout, "\x1b[H\x1b[2J")
		if err != nil {
			// The admin API may be restarting: say so and try again.
			fmt.Fprintf(stdout, "%s: %v\n", time.Now().Format("15:04:05"), err)
		} else {
			renderStatus(stdout, st)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// statusURL is the admin API's base URL: --admin, else the config's
// server.admin, else the default address.
func statusURL(flagURL, cfgPath string) (*url.URL, error) {
	if flagURL != "" {
		return adminURL("admin", flagURL)
	}
	if cfgPath == "" {
		return &url.URL{Scheme: "http", Host: config.DefaultAdmin}, nil
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cfg.Server.AdminTLS != nil {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: cfg.Server.Admin}, nil
}

func fetchStatus(ctx context.Context, client *http.Client, base *url.URL, access *adminAccess) (admin.Status, error) {
	var st admin.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+"/debug/status", nil)
	if err != nil {
		return st, err
	}
	if err := access.authorize(req); err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		// A refusal of server.admin_auth says why in reason and message;
		// other errors only in error.
		var e struct {
			Error   string `json:"error"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			why := e.Error
			if e.Message != "" {
				why = e.Message
			}
			if e.Reason != "" {
				why += " (reason: " + e.Reason + ")"
			}
			return st, fmt.Errorf("%s: %s: %s", req.URL, resp.Status, why)
		}
		return st, fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, errors.New(req.URL.String() + ": not a status: " + err.Error())
	}
	return st, nil
}

// renderStatus writes st as tables.
func renderStatus(w io.Writer, st admin.Status) {
	c := st.Config
	fmt.Fprintf(w, "%s  generation %d, loaded %s\n", c.File, c.Generation, ago(st.Time, c.LoadedAt))
	if c.LastError != "" {
		at := time.Time{}
		if c.LastErrorAt != nil {
			at = *c.LastErrorAt
		}
		fmt.Fprintf(w, "last reload rejected %s (the previous config keeps serving): %s\n", ago(st.Time, at), c.LastError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "POOL\tMAX-CONCURRENCY\tBALANCER\tRUNNERS")
	for _, p := range st.Pools {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", p.Name, p.MaxConcurrency, p.Balancer, len(p.Runners))
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "POOL\tRUNNER\tSTATE\tSOURCE\tIN-FLIGHT\tQUEUED\tHIT-RATE\tMODELS")
	for _, p := range st.Pools {
		for _, r := range p.Runners {
			rate := "-"
			if r.HitRate != nil {
				rate = fmt.Sprintf("%.1f%% of %d", 100**r.HitRate, r.Hinted)
			}
			queued := fmt.Sprintf("%.0f ms", r.QueuedMs)
			if r.Queued > 0 {
				queued = fmt.Sprintf("%d req, %s", r.Queued, queued)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.Name, r.Address, r.State, r.Source, r.InFlight, queued, rate, orDash(strings.Join(r.Hints, ",")))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "(hit rates over the last %d decisions)\n", st.Considered)
	if len(st.Splits) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(tw, "SPLIT\tVARIANT\tWEIGHT\tNOW\tSTATE\tWHY")
		for _, s := range st.Splits {
			for _, v := range s.Variants {
				fmt.Fprintf(tw, "%s #%d\t%s\t%d\t%d\t%s\t%s\n", s.Route, s.Rule, v.Pool, v.Weight, v.Current, v.State, v.Reason)
			}
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "TIME\tROUTE\tPOOL\tHINT\tOUTCOME\tRUNNER\tSTATUS\tTOOK")
	for i, d := range st.Decisions {
		if i == 10 {
			break
		}
		runner, status, took := "-", "running", "-"
		if d.Chosen != nil {
			runner = d.Chosen.Runner
		}
		if e := d.End; e != nil {
			status = fmt.Sprint(e.Status)
			if e.Unreported {
				status = "unreported"
			}
			took = fmt.Sprintf("%.0f ms", float64(e.Elapsed.Std().Microseconds())/1000)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.Format("15:04:05.000"), d.Route, d.Pool, orDash(d.Hint), d.Outcome, runner, status, took)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "ENVOY\tCONNECTED\tACKED")
	for _, e := range st.Envoys {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Node, ago(st.Time, e.Connected), versions(e.Acked))
	}
	tw.Flush()
	fmt.Fprintf(w, "published: %s\n", versions(st.Published))
}

// versions lists resource types' versions, sorted by type.
func versions(m map[string]string) string {
	types := make([]string, 0, len(m))
	for k := range m {
		types = append(types, k)
	}
	sort.Strings(types)
	parts := make([]string, 0, len(types))
	for _, k := range types {
		parts = append(parts, k+" "+m[k])
	}
	return orDash(strings.Join(parts, ", "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}
