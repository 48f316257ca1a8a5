package overhead

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// What a path costs the machine: the CPU time (user + system) its own
// processes use during the measured attacks, read from /proc/<pid>/stat
// just before and just after each one. Not the load generator's (this
// process) and not the runner's, which every setup shares. The kernel counts
// it in clock ticks of 10 ms, so a cell's rounds are summed before dividing
// by their requests.

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (`getconf CLK_TCK`): 100 on every Linux architecture, whatever the
// kernel's own tick rate.
const clockTicks = 100

// cpuMeasured says whether this system has /proc to read CPU time from; where
// it has not, no setup's CPU is measured.
var cpuMeasured = runtime.GOOS == "linux"

// envoyComm is the command name (/proc/<pid>/comm) of an Envoy process: how
// the switchyard setup's Envoy is told apart from switchyard.
const envoyComm = "envoy"

// cpuTime is CPU time of a setup's processes, Envoy's apart from the rest's.
type cpuTime struct{ envoy, other time.Duration }

func (a cpuTime) add(b cpuTime) cpuTime { return cpuTime{a.envoy + b.envoy, a.other + b.other} }
func (a cpuTime) sub(b cpuTime) cpuTime { return cpuTime{a.envoy - b.envoy, a.other - b.other} }
func (a cpuTime) total() time.Duration  { return a.envoy + a.other }

// treeCPU returns the CPU time root and its descendants have used so far.
// The tree is walked afresh at each reading.
func treeCPU(root int) (cpuTime, error) {
	procs, err := readProcs()
	if err != nil {
		return cpuTime{}, err
	}
	if _, ok := procs[root]; !ok {
		return cpuTime{}, fmt.Errorf("cpu time: process %d is gone", root)
	}
	children := make(map[int][]int)
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	var t cpuTime
	for todo := []int{root}; len(todo) > 0; todo = todo[1:] {
		p := procs[todo[0]]
		d := time.Duration(p.ticks) * time.Second / clockTicks
		if p.comm == envoyComm {
			t.envoy += d
		} else {
			t.other += d
		}
		todo = append(todo, children[todo[0]]...)
	}
	return t, nil
}

// procStat is what treeCPU needs of a process's /proc/<pid>/stat.
type procStat struct {
	ppid  int
	comm  string
	ticks int64 // utime + stime
}

// readProcs reads the stat of every process, by pid. A process that exits
// while it reads is left out.
func readProcs() (map[int]procStat, error) {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("cpu time: %w", err)
	}
	procs := make(map[int]procStat, len(dirs))
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		p, err := parseStat(b)
		if err != nil {
			return nil, fmt.Errorf("cpu time: /proc/%d/stat: %w", pid, err)
		}
		procs[pid] = p
	}
	return procs, nil
}

// parseStat parses a /proc/<pid>/stat line: "pid (comm) state ppid …" with
// utime and stime the 14th and 15th fields. comm may hold spaces and
// parentheses, so the fields are counted from its last ')'.
func parseStat(b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, errors.New("no (comm)")
	}
	f := bytes.Fields(b[end+1:]) // from the 3rd field, state
	if len(f) < 13 {
		return procStat{}, errors.New("too few fields")
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return procStat{}, err
	}
	utime, err := strconv.ParseInt(string(f[11]), 10, 64)
	if err != nil {
		return procStat{}, err
	}
	stime, err := strconv.ParseInt(string(f[12]), 10, 64)
	if err != nil {
		return procStat{}, err
	}
	return procStat{ppid: ppid, comm: string(b[open+1 : end]), ticks: utime + stime}, nil
}

// CPUCost is the CPU time a setup's own processes used over all measured
// rounds at one rate, per 1,000 requests answered or not, in milliseconds.
type CPUCost struct {
	MsPer1000 float64 `json:"ms_per_1000_requests"`
	// The switchyard setup's two parts: switchyard (the stack process, which
	// runs switchyard's server, and any descendant but Envoy) and its Envoy.
	SwitchyardMsPer1000 *float64 `json:"switchyard_ms_per_1000_requests,omitempty"`
	EnvoyMsPer1000      *float64 `json:"envoy_ms_per_1000_requests,omitempty"`
	// Ms is the CPU time the figures are made of, over all rounds: a
	// multiple of the kernel's 10 ms clock tick.
	Ms float64 `json:"ms"`
}

// cpuCost is c's CPU time per 1,000 requests, split into switchyard and
// Envoy when split; nil when c has no CPU readings or no requests.
func (c *cell) cpuCost(split bool) *CPUCost {
	if c.cpu == nil || c.skipped != "" || c.all.Requests == 0 {
		return nil
	}
	var sum cpuTime
	for _, t := range c.cpu {
		sum = sum.add(t)
	}
	per1000 := func(d time.Duration) float64 { return round3(ms(d) / float64(c.all.Requests) * 1000) }
	cc := &CPUCost{MsPer1000: per1000(sum.total()), Ms: ms(sum.total())}
	if split {
		cc.SwitchyardMsPer1000, cc.EnvoyMsPer1000 = ptr(per1000(sum.other)), ptr(per1000(sum.envoy))
	}
	return cc
}
