package gateway

import (
	"cmp"
	"errors"
	"log/slog"
	"slices"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/gateway/ops"
	"github.com/meshgw/meshgw/rtp/nack"
	"github.com/meshgw/meshgw/rtsp/access"
)

// This file starts the operations listener (api:) of each role and gives it its read model: a
// Gateway (run, control) and a NodeProcess (node) implement ops.Source.

// openOps starts the ops listener of cfg.API for src; nil when api: is absent.
func openOps(cfg *config.Config, src ops.Source, log *slog.Logger) (*ops.Server, error) {
	if !cfg.API.Enabled() {
		return nil, nil
	}
	return ops.New(ops.Config{API: cfg.API, Users: cfg.Auth.Users, Realm: cfg.Auth.Realm,
		Hashing: access.VerifierConfig{Slots: cfg.Auth.MaxConcurrentHashes, Wait: cfg.Auth.HashWait}, Source: src, Logger: log})
}

// Ops is the gateway's operations listener, nil when the config has no api: section.
func (g *Gateway) Ops() *ops.Server { return g.ops }

// Snapshot implements ops.Source.
func (g *Gateway) Snapshot() ops.Snapshot {
	snap := g.Control.Snapshot()
	snap.Node, snap.Role, snap.Started = g.Node.Name(), g.role, g.started
	snap.Flows = flowKinds(g.Node)
	return snap
}

// Ready implements ops.Source: the front door listens (it does once Open returns) and the
// control serves.
func (g *Gateway) Ready() error { return g.Control.Ready() }

// Ops is the node's operations listener, nil when its config has no api: section.
func (p *NodeProcess) Ops() *ops.Server { return p.ops }

// Snapshot implements ops.Source: the node's own flows and the relay hops that end on it.
func (p *NodeProcess) Snapshot() ops.Snapshot {
	snap := ops.Snapshot{Node: p.Node.Name(), Role: "node", Started: p.started, Flows: flowKinds(p.Node)}
	for _, f := range p.Node.Flows() {
		if f.Kind() != node.SourceRelay {
			continue
		}
		st, err := p.Node.Stats(f.ID)
		if err != nil {
			continue
		}
		var rx *nack.Stats
		if rs, err := p.Node.RepairStats(f.ID); err == nil {
			rx = &rs
		}
		snap.Relays = append(snap.Relays, relayHops(f.Stream, f.Meta[metaPeer], p.Node.Name(), st, rx, nil)...)
	}
	since, attached := p.agent.AttachedSince()
	snap.Nodes = []ops.Node{{Name: p.Node.Name(), Local: true, Data: p.cfg.DataAddress, RTPPort: p.Node.UDP().RTPPort(),
		LiveLive: p.cfg.LiveLiveAddress, Networks: p.cfg.ClientNetworks, Capabilities: p.caps, Flows: len(p.Node.Flows()),
		Up: attached, AttachedAt: since}}
	return snap
}

// Ready implements ops.Source: a node is ready while attached to its control.
func (p *NodeProcess) Ready() error {
	if _, ok := p.agent.AttachedSince(); !ok {
		return errors.New("not attached to the control")
	}
	return nil
}

// flowKinds sums a local node's flows by kind.
func flowKinds(n *node.Local) []ops.FlowKind {
	byKind := map[node.FlowKind]*ops.FlowKind{}
	for _, f := range n.Flows() {
		st, err := n.Stats(f.ID)
		if err != nil {
			continue // deleted since
		}
		k := byKind[f.Kind()]
		if k == nil {
			k = &ops.FlowKind{Kind: string(f.Kind())}
			byKind[f.Kind()] = k
		}
		k.Flows++
		k.Packets += st.Packets
		k.Bytes += st.Bytes
		k.Dropped += st.Dropped
		k.Errors += st.Errors
		if rs := st.RTPSource; rs != nil {
			k.FECRecovered += rs.Recovered
			k.FECUnrecoverable += rs.Unrecoverable
		}
	}
	out := make([]ops.FlowKind, 0, len(byKind))
	for _, k := range byKind {
		out = append(out, *k)
	}
	slices.SortFunc(out, func(a, b ops.FlowKind) int { return cmp.Compare(a.Kind, b.Kind) })
	return out
}
