package overhead

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/testutil/netutil"
)

//go:embed routerapp/app.py
var routerApp []byte

// pythonModules are what routerapp/app.py imports from requirements.txt.
var pythonModules = []string{"fastapi", "httpx", "uvicorn", "uvloop", "httptools"}

const pyInstallHint = "run `.venv/bin/pip install -r bench/overhead/requirements.txt` in the repository " +
	"(after `make envoy` has created .venv)"

// findPython returns the project's .venv/bin/python, found by walking up
// from the working directory, then from the running executable's directory.
func findPython() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, start := range starts {
		for dir := start; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, ".venv", "bin", "python")
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", fmt.Errorf("python router: no .venv/bin/python in %s or any parent; %s", strings.Join(starts, " or "), pyInstallHint)
}

// pyRouter is routerapp/app.py running under uvicorn.
type pyRouter struct {
	*proc
	url     string
	dir     string
	version string
}

func startPyRouter(ctx context.Context, small, large string) (*pyRouter, error) {
	py, err := findPython()
	if err != nil {
		return nil, err
	}
	check := "import sys\nimport " + strings.Join(pythonModules, ", ") + "\nprint(sys.version.split()[0])"
	out, err := exec.CommandContext(ctx, py, "-c", check).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("python router: %s cannot import its dependencies (%v): %s\n%s",
			py, err, strings.TrimSpace(lastLine(string(out))), pyInstallHint)
	}
	version := strings.TrimSpace(string(out))

	dir, err := os.MkdirTemp("", "switchyard-overhead-py-")
	if err != nil {
		return nil, err
	}
	app := filepath.Join(dir, "app.py")
	if err := os.WriteFile(app, routerApp, 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := netutil.FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(py, app, "--port", strconv.Itoa(port), "--small", small, "--large", large)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	p, err := startProc("python router", cmd)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &pyRouter{proc: p, url: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir, version: version}
	if err := r.waitReady(ctx); err != nil {
		r.stop()
		return nil, p.failure(err)
	}
	return r, nil
}

func (r *pyRouter) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	return r.proc.waitReady(ctx, 30*time.Second, 50*time.Millisecond, "not serving /healthz", func() bool {
		resp, err := client.Get(r.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (r *pyRouter) stop() {
	r.proc.stop()
	os.RemoveAll(r.dir)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
