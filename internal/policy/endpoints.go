package policy

import (
	"strings"

	"github.com/switchyard/switchyard/internal/contract"
)

// Endpoints is the runner list for override_host. Envoy reads it with
// one cursor across attempts, each attempt taking the next entry that is
// in its cluster; so with fallback pools it holds exactly one entry per
// attempt of the target's composite cluster: the pool's first
// contract.PrimaryAttempts runners (repeated when the pool has fewer),
// then one runner per fallback pool.
func (d Decision) Endpoints() string {
	var addrs []string
	if len(d.Target.Fallback) == 0 {
		for _, r := range d.Runners {
			addrs = append(addrs, r.Address)
		}
		return strings.Join(addrs, ",")
	}
	if len(d.Runners) > 0 {
		for i := range contract.PrimaryAttempts {
			addrs = append(addrs, d.Runners[min(i, len(d.Runners)-1)].Address)
		}
	}
	for _, r := range d.Fallbacks {
		if r == nil {
			break // an empty pool: Envoy's least_request picks from here on
		}
		addrs = append(addrs, r.Address)
	}
	return strings.Join(addrs, ",")
}
