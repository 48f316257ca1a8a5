package cluster

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// hintReport is a runner's entry in the hints bucket: the hints header it
// last reported, as a replica saw it.
type hintReport struct {
	Address string `json:"address"`
	Hints   string `json:"hints"`
	Replica string `json:"replica"`
}

// Reported is the policy's hook: a runner reported hints on a response
// this replica saw. A report that changes nothing is not written.
func (c *Cluster) Reported(addr, hints string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.lastHints[addr]; ok && last == hints {
		return
	}
	c.lastHints[addr] = hints
	v, _ := json.Marshal(hintReport{Address: addr, Hints: hints, Replica: c.replica})
	c.queueLocked(bucketHints, addrKey(addr), v)
}

// applyHints learns what a runner reported through another replica.
func (c *Cluster) applyHints(e jetstream.KeyValueEntry) error {
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	var h hintReport
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return err
	}
	if k, err := base64.RawURLEncoding.DecodeString(e.Key()); err != nil || string(k) != h.Address {
		return fmt.Errorf("key %q does not name %q", e.Key(), h.Address)
	}
	c.mu.Lock()
	c.lastHints[h.Address] = h.Hints
	c.mu.Unlock()
	if h.Replica != c.replica {
		c.o.Engine.Hints().Report(h.Address, h.Hints, true)
	}
	return nil
}
