package cluster

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/internal/config"
	"github.com/switchyard/switchyard/internal/registry"
)

// registration is a runner's entry in the runners bucket.
type registration struct {
	Pool    string `json:"pool"`
	Address string `json:"address"`
	State   string `json:"state"`            // registry.Active or registry.Draining
	TTL     int64  `json:"ttl_ms,omitempty"` // 0: no expiry
	Replica string `json:"replica"`          // where it was made
}

// addrKey makes an address (with ':', '[', ']') a valid key token.
func addrKey(addr string) string { return base64.RawURLEncoding.EncodeToString([]byte(addr)) }

func runnerKeyOf(pool, addr string) string { return pool + "." + addrKey(addr) }

// Register registers a runner or renews it here and, through the runners
// bucket, at every replica.
func (c *Cluster) Register(pool, address string, ttl time.Duration) (registry.Info, error) {
	info, err := c.o.Registry.Register(pool, address, ttl)
	if err != nil {
		return info, err
	}
	c.share(registration{Pool: info.Pool, Address: info.Address, State: string(registry.Active), TTL: ttl.Milliseconds(), Replica: c.replica})
	return info, nil
}

// Deregister drains a runner here and at every replica.
func (c *Cluster) Deregister(pool, address string) (registry.Info, error) {
	info, err := c.o.Registry.Deregister(pool, address)
	if err != nil {
		return info, err
	}
	c.share(registration{Pool: info.Pool, Address: info.Address, State: string(registry.Draining), Replica: c.replica})
	return info, nil
}

// List lists this replica's runners (every replica has them all).
func (c *Cluster) List() []registry.Info { return c.o.Registry.List() }

func (c *Cluster) share(r registration) {
	v, _ := json.Marshal(r)
	k := runnerKeyOf(r.Pool, r.Address)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.owned[k] = v
	c.queueLocked(bucketRunners, k, v)
}

// applyRunner applies another replica's registration, renewal or drain.
// An entry read when the watch starts (a replica starting, or NATS back)
// gets what is left of its TTL, timed from when NATS stored it; a runner of
// a pool this config does not have is ignored.
func (c *Cluster) applyRunner(e jetstream.KeyValueEntry, initial bool) error {
	if e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	var r registration
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return err
	}
	if r.Replica == c.replica && !initial {
		return nil // made here, already applied
	}
	var err error
	switch registry.State(r.State) {
	case registry.Active:
		ttl := time.Duration(r.TTL) * time.Millisecond
		if initial && ttl > 0 {
			ttl -= time.Since(e.Created())
			if ttl <= 0 {
				return nil // expired while nobody watched
			}
		}
		_, err = c.o.Registry.Register(r.Pool, r.Address, ttl)
	case registry.Draining:
		_, err = c.o.Registry.Deregister(r.Pool, r.Address)
		if errors.Is(err, registry.ErrUnknownRunner) {
			err = nil // gone here already
		}
	default:
		err = fmt.Errorf("unknown state %q", r.State)
	}
	if err != nil {
		return fmt.Errorf("runner %s in pool %q: %w", r.Address, r.Pool, err)
	}
	if r.Replica == c.replica {
		c.mu.Lock()
		c.owned[e.Key()] = e.Value()
		c.mu.Unlock()
	}
	return nil
}

// validReplica guards names read from the buckets.
func validReplica(s string) bool {
	return s != "" && len(s) <= 64 && config.ValidClusterName(s)
}
