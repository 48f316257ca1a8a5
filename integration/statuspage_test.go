package integration

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/png"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/switchyard/switchyard/internal/admin"
	"github.com/switchyard/switchyard/internal/dev/simrunner"
	"github.com/switchyard/switchyard/internal/testutil/syncio"
)

// chromium finds the headless Chromium the browser tests drive: CHROMIUM_BIN,
// else Debian's chromium-headless-shell or chromium on PATH. `make test`
// installs it; without it the test fails, it does not skip.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("the status page test needs a headless Chromium (Debian's chromium-headless-shell): `make test` installs it, or set CHROMIUM_BIN")
	return ""
}

// browser opens a headless Chromium tab at width × height that collects
// console errors and uncaught exceptions.
func browser(t *testing.T, width, height int) (context.Context, func() []string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	var mu sync.Mutex
	var problems []string
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				problems = append(problems, fmt.Sprintf("console %s: %v", e.Type, e.Args))
			}
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError || e.Entry.Level == cdplog.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("log %s: %s %s", e.Entry.Level, e.Entry.Text, e.Entry.URL))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		}
	})
	if err != nil {
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	// Resource load failures (a 404) are log entries, not console calls.
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return ctx, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), problems...)
	}
}

// The status page, in a real headless Chromium: it loads without console
// errors, shows the stack's runners and the decisions made, updates by
// itself after a registration, and fits a phone's width.
func TestStatusPageInBrowser(t *testing.T) {
	a := runnersNamed(t, simrunner.Options{}, "a100-1", "a100-2")
	late := StartRunner(t, "a100-3", simrunner.Options{})
	s := NewStack(t, StackConfig{Body: poolsYAML(poolSpec{name: "a100", runners: a}) + `
routes:
  - name: images
    match: {prefix: /}
    hint_from: body.model
    rules: [{pool: a100}]
`})
	for range 3 {
		if r := s.MustDo(http.MethodPost, "/gen", nil, `{"model": "flux"}`); r.Status != http.StatusOK {
			t.Fatalf("status %d", r.Status)
		}
		s.Settle(0)
	}

	ctx, problems := browser(t, 1280, 900)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.AdminURL+"/"), chromedp.WaitVisible(`table.runners`)); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("tr.runner")).map(r => r.dataset.address)`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rows, ","); got != a[0].Addr+","+a[1].Addr && got != a[1].Addr+","+a[0].Addr {
		t.Errorf("runner rows %v, want the stack's two runners", rows)
	}
	decided, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#decisions tr").length - 1`))
	if err != nil {
		t.Fatal(err)
	}
	if decided != 3 {
		t.Errorf("%d decisions shown, want 3", decided)
	}
	// A runner registers: the open page shows it after its own refresh.
	if code := s.Admin(http.MethodPut, "/v1/pools/a100/runners/"+late.Addr, "", nil); code != http.StatusOK {
		t.Fatalf("registering: %d", code)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`tr.runner[data-address="`+late.Addr+`"]`)); err != nil {
		t.Fatalf("the page never showed the registered runner: %v", err)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("console errors or exceptions: %v", p)
	}

	// On a phone's width the page itself does not scroll sideways: wide
	// tables scroll in their own box.
	phone, phoneProblems := browser(t, 390, 844)
	// A phone: its width, its pixel density, and the viewport meta tag
	// honoured (a desktop window cannot be made this narrow).
	if _, err := chromedp.Call(phone, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 844, DeviceScaleFactor: 3, Mobile: true}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(phone, chromedp.Navigate(s.AdminURL+"/"), chromedp.WaitVisible(`table.runners`)); err != nil {
		t.Fatal(err)
	}
	// A mobile viewport widens to fit what overflows (window.innerWidth
	// grows with it), so the page is held to the phone's 390 px.
	overflow, err := chromedp.Run(phone, chromedp.Evaluate[bool](`document.body.scrollWidth > 390 || document.documentElement.scrollWidth > 390 || window.innerWidth > 390`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		why, err := chromedp.Run(phone, chromedp.Evaluate[string](`window.innerWidth + " " + document.documentElement.scrollWidth + " " + Array.from(document.body.querySelectorAll("*")).filter(e => !e.closest(".scroll") && e.scrollWidth > 390).slice(-5).map(e => e.tagName + "." + e.className + " " + e.scrollWidth).join(", ")`))
		if err != nil {
			why = err.Error()
		}
		t.Errorf("the page is wider than a phone's screen (inner width, scroll width, what sticks out): %s", why)
	}
	shot, err := chromedp.Run(phone, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if img, _, err := image.DecodeConfig(bytes.NewReader(shot)); err != nil || img.Width != 390*3 {
		t.Errorf("the phone screenshot: %+v, %v; want 390 px at 3 device pixels each", img, err)
	}
	if p := os.Getenv("SWITCHYARD_SCREENSHOT_PHONE"); p != "" {
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if p := phoneProblems(); len(p) > 0 {
		t.Errorf("phone: console errors or exceptions: %v", p)
	}
}

// SWITCHYARD_SCREENSHOT=$PWD/docs/status.png retakes the README's picture:
// the status page of `switchyard demo`'s stack at a laptop's width, after
// some seconds of its traffic.
func TestDemoStatusScreenshot(t *testing.T) {
	out := os.Getenv("SWITCHYARD_SCREENSHOT")
	if out == "" {
		t.Skip("set SWITCHYARD_SCREENSHOT to a .png path to take the README's screenshot")
	}
	cmd, adminURL := demoCommand(t, "--duration", "60s")
	var log syncio.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(log.String(), "Stack ready at") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not start:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(12 * time.Second)
	ctx, problems := browser(t, 1280, 900)
	if err := chromedp.Do(ctx, chromedp.Navigate(adminURL+"/"), chromedp.WaitVisible(`#decisions`)); err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("console errors or exceptions: %v", p)
	}
}

// /debug/status from a real switchyard and Envoy: the connected Envoy has
// acknowledged what was published (named alike), a rejected edit is the
// last reload error while the generation stays, and a good edit is the
// next generation.
func TestStatusPageFacts(t *testing.T) {
	a1 := StartRunner(t, "a1", simrunner.Options{})
	b1 := StartRunner(t, "b1", simrunner.Options{})
	s := NewStack(t, StackConfig{Body: twoPools([]*TestRunner{a1}, []*TestRunner{b1})})
	good := s.ReadConfig()
	status := func() admin.Status {
		t.Helper()
		var st admin.Status
		if code := s.Admin(http.MethodGet, "/debug/status", "", &st); code != http.StatusOK {
			t.Fatalf("GET /debug/status: %d", code)
		}
		return st
	}
	var st admin.Status
	Eventually(t, 10*time.Second, "the Envoy acknowledged every published version", func() bool {
		st = status()
		if len(st.Envoys) != 1 || st.Published["Cluster"] == "" {
			return false
		}
		for typ, v := range st.Envoys[0].Acked {
			if st.Published[typ] != v {
				return false
			}
		}
		return len(st.Envoys[0].Acked) >= 4 // clusters, endpoints, listeners, routes
	})
	if st.Config.Generation != 1 || st.Config.LastError != "" || st.Config.LoadedAt.IsZero() {
		t.Errorf("at the start: %+v, want generation 1 and no reload error", st.Config)
	}
	if len(st.Pools) != 2 || len(st.Pools[0].Runners) != 1 || st.Pools[0].Runners[0].Address != a1.Addr {
		t.Errorf("pools %+v", st.Pools)
	}

	s.WriteConfig(strings.Replace(good, "rules: [{pool: a}]", "rules: [{pool: c}]", 1))
	Eventually(t, 5*time.Second, "the rejected edit shown", func() bool {
		st = status()
		return strings.Contains(st.Config.LastError, `unknown pool "c"`)
	})
	if st.Config.Generation != 1 || st.Config.LastErrorAt == nil {
		t.Errorf("after a rejected edit: %+v, want generation 1 still and when it was rejected", st.Config)
	}

	s.WriteConfig(strings.Replace(good, "rules: [{pool: a}]", "rules: [{pool: b}]", 1))
	Eventually(t, 5*time.Second, "the good edit is generation 2", func() bool { return status().Config.Generation == 2 })
}
