package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/node"
)

// TestRealLocalBackup steers a backed-up source onto a real node.Local through the API: the
// backup crosses the wire in the flow, the node runs both legs, and the selector's stats come
// back in the node's stats reports.
func TestRealLocalBackup(t *testing.T) {
	p := newPKI(t, "a")
	h := newRecHandler()
	_, addr, _ := startServer(t, p, "", ServerConfig{Handler: h})
	lt, setup := realLocal(t, "a")
	startAgent(t, p, "a", "a", addr, lt, nil, setup)
	r := h.next(t, "up").node
	f := demoFlow
	f.Spec = node.DemoSource{Backup: &node.Backup{Source: node.DemoSource{}, Mode: node.BackupSwitch, Stall: 300 * time.Millisecond}}
	if _, err := r.Apply(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	h.next(t, "ready")
	var st node.FlowStats
	deadline := time.Now().Add(15 * time.Second)
	for st.Backup.BackupPackets == 0 || st.Backup.PrimaryPackets == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no backup stats from the node within 15s: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
		st, _ = r.Stats(f.ID)
	}
	if st.Backup.Mode != node.BackupSwitch || st.Backup.Active != "primary" {
		t.Errorf("stats over the wire %+v", st)
	}
	var held *node.Flow
	for _, fl := range lt.Flows() {
		if fl.ID == f.ID {
			held = &fl
		}
	}
	if held == nil || held.Spec.(node.DemoSource).Backup == nil || held.Spec.(node.DemoSource).Backup.Source.Kind() != node.SourceDemo ||
		held.Spec.(node.DemoSource).Backup.Stall != 300*time.Millisecond {
		t.Fatalf("the node holds %+v, want the flow with its backup", held)
	}
	if err := r.Delete(context.Background(), f.ID); err != nil {
		t.Fatal(err)
	}
}
