package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/internal/affinity"
	"github.com/switchyard/switchyard/internal/runner"
)

// loadShare is a replica's entry in the load bucket: its own work in flight
// on each runner.
type loadShare struct {
	Replica string        `json:"replica"`
	Runners []runnerShare `json:"runners"`
}

type runnerShare struct {
	Pool     string             `json:"pool"`
	Address  string             `json:"address"`
	InFlight int64              `json:"in_flight"`
	Jobs     []affinity.JobInfo `json:"jobs,omitempty"`
}

// queueLoad queues this replica's load share when it changed, or when the
// last one is LoadHeartbeat old (so the others keep counting it).
func (c *Cluster) queueLoad() {
	jobs := c.o.Engine.Jobs()
	share := loadShare{Replica: c.replica, Runners: []runnerShare{}}
	// Active runners only: a draining one takes no new work anywhere.
	c.o.Registry.EachActive(func(r *runner.Runner) {
		if n := r.Local(); n > 0 || len(jobs[r.Address]) > 0 {
			share.Runners = append(share.Runners, runnerShare{Pool: r.Pool, Address: r.Address, InFlight: n, Jobs: jobs[r.Address]})
		}
	})
	// A stable order, so an unchanged share is seen as unchanged.
	slices.SortFunc(share.Runners, func(a, b runnerShare) int {
		return cmp.Or(strings.Compare(a.Pool, b.Pool), strings.Compare(a.Address, b.Address))
	})
	// The share without its ages says whether anything changed.
	sig := share
	sig.Runners = make([]runnerShare, len(share.Runners))
	for i, rs := range share.Runners {
		sig.Runners[i] = rs
		sig.Runners[i].Jobs = nil
		for _, j := range rs.Jobs {
			sig.Runners[i].Jobs = append(sig.Runners[i].Jobs, affinity.JobInfo{Hint: j.Hint, Cost: j.Cost})
		}
	}
	sigBytes, _ := json.Marshal(sig)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(sigBytes) == c.lastLoad && now.Sub(c.lastLoadAt) < LoadHeartbeat {
		return
	}
	c.lastLoad, c.lastLoadAt = string(sigBytes), now
	v, _ := json.Marshal(share)
	c.queueLocked(bucketLoad, c.replica, v)
}

// applyLoad takes another replica's load share into this replica's
// estimates: its jobs into the pickers' backlogs, its counts into the
// runners' in-flight counts.
func (c *Cluster) applyLoad(e jetstream.KeyValueEntry) error {
	if e.Key() == c.replica {
		return nil
	}
	if e.Operation() != jetstream.KeyValuePut {
		c.forgetPeer(e.Key())
		return nil
	}
	var s loadShare
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return err
	}
	if s.Replica != e.Key() || !validReplica(s.Replica) {
		return fmt.Errorf("load share of %q under key %q", s.Replica, e.Key())
	}
	c.mu.Lock()
	c.peers[s.Replica] = &peer{share: s, received: time.Now()}
	c.mu.Unlock()
	jobs := map[string][]affinity.JobInfo{}
	for _, rs := range s.Runners {
		if len(rs.Jobs) > 0 {
			jobs[rs.Address] = rs.Jobs
		}
	}
	c.o.Engine.SetRemote(s.Replica, jobs)
	c.recount()
	return nil
}

func (c *Cluster) forgetPeer(replica string) {
	c.mu.Lock()
	_, had := c.peers[replica]
	delete(c.peers, replica)
	c.mu.Unlock()
	if had {
		c.o.Engine.SetRemote(replica, nil)
		c.recount()
	}
}

// recount sets every runner's remote in-flight count to the sum of the
// live shares.
func (c *Cluster) recount() {
	c.mu.Lock()
	sums := map[runnerKey]int64{}
	for _, p := range c.peers {
		for _, rs := range p.share.Runners {
			sums[runnerKey{rs.Pool, rs.Address}] += rs.InFlight
		}
	}
	stale := c.remoteCount
	c.remoteCount = make(map[runnerKey]bool, len(sums))
	for k := range sums {
		c.remoteCount[k] = true
	}
	c.m.Peers.Set(float64(len(c.peers)))
	c.mu.Unlock()
	for k := range stale {
		if _, ok := sums[k]; !ok {
			if r, ok := c.o.Registry.Runner(k.pool, k.addr); ok {
				r.SetRemote(0)
			}
		}
	}
	for k, n := range sums {
		if r, ok := c.o.Registry.Runner(k.pool, k.addr); ok {
			r.SetRemote(n)
		}
	}
}

// expireLoop forgets the shares of replicas not heard from within
// LoadExpiry, on this replica's clock, connected to NATS or not.
func (c *Cluster) expireLoop(ctx context.Context) {
	t := time.NewTicker(LoadHeartbeat / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var dead []string
		c.mu.Lock()
		for name, p := range c.peers {
			if time.Since(p.received) > LoadExpiry {
				dead = append(dead, name)
			}
		}
		c.mu.Unlock()
		for _, name := range dead {
			c.log.Info("cluster: a replica's load share expired", "peer", name)
			c.forgetPeer(name)
		}
	}
}
