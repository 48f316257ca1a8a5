package overhead

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/supervise"
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
	proc    *supervise.Process
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
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	p, err := supervise.Start(ctx, cmd, supervise.Options{
		Name:         "python router",
		Ready:        supervise.HTTPOK(url + "/healthz"),
		ReadyTimeout: 30 * time.Second,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &pyRouter{proc: p, url: url, dir: dir, version: version}, nil
}

func (r *pyRouter) stop() {
	_ = r.proc.Stop()
	os.RemoveAll(r.dir)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
