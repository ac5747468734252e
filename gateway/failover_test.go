package gateway

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/node"
)

// A node the control declared dead but that re-attached before its streams were moved keeps the
// old source flow (its reconcile still counted it as wanted): the re-ingest deletes it there, or
// the node would refuse the stream's source if the stream ever came back to it ("stream already
// has source flow", seen in the cluster soak).
func TestReingestDeletesSourceOnReattachedNode(t *testing.T) {
	c, _ := graceControl(t)
	a, b := &recNode{name: "node-a"}, &recNode{name: "node-b"}
	info := func(ip string) NodeInfo {
		return NodeInfo{Data: netip.MustParseAddr(ip), RTPPort: 8000, RTCPPort: 8001}
	}
	c.NodeUp("node-a", a, info("10.0.0.1"), nil, nil)
	c.NodeUp("node-b", b, info("10.0.0.2"), nil, nil)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var src node.Flow
	deadline := time.Now().Add(2 * time.Second)
	for {
		a.mu.Lock()
		if len(a.applied) > 0 {
			src = a.applied[0]
		}
		a.mu.Unlock()
		if src.ID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the demo route's source was not applied on node-a")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	s := c.streams.allLocked()[0]
	dead := c.place.lookupLocked("node-a") // alive: it re-attached before the move
	c.mu.Unlock()
	s.relayMu.Lock()
	c.failover.reingestLocked(context.Background(), s, dead)
	s.relayMu.Unlock()

	a.mu.Lock()
	deleted := slices.Clone(a.deleted)
	a.mu.Unlock()
	if !slices.Contains(deleted, src.ID) {
		t.Errorf("node-a deleted %v, want the moved source flow %s", deleted, src.ID)
	}
	if n, _ := b.calls(); n == 0 {
		t.Error("the source was not re-ingested on node-b")
	}
}
