package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/backup"
	"github.com/meshgw/meshgw/rtsp/demo"
	"github.com/meshgw/meshgw/rtsp/pull"
)

// The selector's packet path is tested in rtp/backup; these tests are the
// node's wiring of it: laying the stream out, refusing legs, logging and
// running real ingests.

// selHarness is a real node whose backed-up source's two legs the test
// drives itself (the ingests are built but never started).
type selHarness struct {
	t    testing.TB
	n    *Local
	sel  *selector
	sdp  []byte
	trks []rtp.Track
	logs *peertest.LogBuffer
}

func newSelHarness(t testing.TB, mode string, stall time.Duration) *selHarness {
	t.Helper()
	logs := &peertest.LogBuffer{}
	n, err := NewLocal(LocalConfig{UDP: rtp.UDPConfig{RTPAddr: "127.0.0.1:0"},
		Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		if t.Failed() {
			t.Logf("node log:\n%s", logs)
		}
	})
	f := Flow{ID: "src", Stream: "st", Spec: DemoSource{Backup: &Backup{Source: DemoSource{}, Stall: stall, Mode: mode}}}
	r, role, err := newRunner(f)
	if err != nil {
		t.Fatal(err)
	}
	fl := &flow{spec: f, run: r, role: role}
	n.mu.Lock()
	_, err = r.start(n, fl) // what it returns is not run: the test is the ingests
	n.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	sel := r.(*selector)
	clip, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	sel.core.Start()
	return &selHarness{t: t, n: n, sel: sel, sdp: clip.SDP(), trks: clip.Tracks(), logs: logs}
}

// leg is the handler of leg i, as its ingest drives it.
func (h *selHarness) leg(i int) rtp.SourceHandler { return h.sel.core.Leg(i) }

func TestSelectorRefusesOtherLayoutOnceLogged(t *testing.T) {
	h := newSelHarness(t, BackupSwitch, time.Second)
	if err := h.leg(backup.LegPrimary).OnReady(h.sdp, h.trks); err != nil {
		t.Fatal(err)
	}
	one := h.trks[:1]
	for range 3 {
		err := h.leg(backup.LegBackup).OnReady(h.sdp, one)
		if err == nil || !strings.Contains(err.Error(), "do not match the stream's") {
			t.Fatalf("backup with 1 track: err %v", err)
		}
	}
	other := []rtp.Track{h.trks[0], {Media: "audio", PayloadType: 0, ClockRate: 8000}}
	if err := h.leg(backup.LegBackup).OnReady(h.sdp, other); err == nil {
		t.Fatal("backup with another audio clock rate accepted")
	}
	if n := strings.Count(h.logs.String(), "backup: refusing a leg"); n != 1 {
		t.Errorf("refusal logged %d times, want once", n)
	}
}

// TestSelectorDisconnectLogged: a leg's disconnect is logged while the other
// leg carries the stream, and a closed ingest's is not.
func TestSelectorDisconnectLogged(t *testing.T) {
	h := newSelHarness(t, BackupSwitch, time.Hour)
	for i := range 2 {
		if err := h.leg(i).OnReady(h.sdp, h.trks); err != nil {
			t.Fatal(err)
		}
	}
	h.leg(backup.LegPrimary).OnDisconnect(fmt.Errorf("read: %w", pull.ErrClosed))
	if strings.Contains(h.logs.String(), "disconnected") {
		t.Errorf("a closed ingest's disconnect is logged:\n%s", h.logs)
	}
	h.leg(backup.LegPrimary).OnDisconnect(errors.New("camera gone"))
	if !strings.Contains(h.logs.String(), "primary disconnected; the backup carries the stream") {
		t.Errorf("no log line about the disconnect")
	}
	if st := h.sel.core.Stats(); st.Mode != BackupSwitch || st.Active != "primary" {
		t.Errorf("stats %+v", st)
	}
}

func TestValidateBackup(t *testing.T) {
	pull := func(b *Backup) Flow {
		return Flow{ID: "f", Stream: "s", Spec: PullSource{URL: "rtsp://a/b", Backup: b}}
	}
	bad := map[string]Flow{
		"no backup source":    pull(&Backup{Stall: time.Second}),
		"unknown mode":        pull(&Backup{Source: DemoSource{}, Mode: "hot"}),
		"negative stall":      pull(&Backup{Source: DemoSource{}, Stall: -1}),
		"publisher backup":    pull(&Backup{Source: PublisherSource{Tracks: make([]rtp.Track, 1)}}),
		"rtp backup":          pull(&Backup{Source: RTPSource{URL: "rtp://1.2.3.4:5000"}}),
		"pull backup w/o URL": pull(&Backup{Source: PullSource{}}),
		"backup of a backup":  pull(&Backup{Source: DemoSource{Backup: &Backup{Source: DemoSource{}}}}),
	}
	for name, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f := pull(&Backup{Source: PullSource{URL: "rtsp://c/d"}, Mode: BackupSwitch, Stall: time.Second})
	if err := f.Validate(); err != nil {
		t.Errorf("valid backup refused: %v", err)
	}
	c := f.clone()
	ps := c.Spec.(PullSource).Backup.Source.(PullSource)
	ps.URL = "rtsp://changed"
	c.Spec.(PullSource).Backup.Source = ps
	if f.Spec.(PullSource).Backup.Source.(PullSource).URL != "rtsp://c/d" {
		t.Error("clone shares the backup")
	}
}

// TestBackupFlowWithRealIngests applies a demo source backed up by a second demo player (two
// streams with their own SSRCs): both legs run, auto mode settles on switch, the primary feeds
// the hubs, and deleting the flow stops everything (goleak checks the goroutines).
func TestBackupFlowWithRealIngests(t *testing.T) {
	ev := &recEvents{}
	n := newLocal(t, ev)
	f := Flow{ID: "src", Version: 1, Stream: "st", Spec: DemoSource{Backup: &Backup{Source: DemoSource{}}}}
	if _, err := n.Apply(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	var st FlowStats
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if st, err = n.Stats("src"); err != nil {
			t.Fatal(err)
		}
		if st.Backup.Mode == BackupSwitch && st.Packets > 50 && st.Backup.BackupPackets > 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want switch mode with both legs delivering", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Backup.Active != "primary" || st.Backup.Switches != 0 || st.Packets > st.Backup.PrimaryPackets {
		t.Fatalf("stats %+v: the primary should carry the stream alone", st)
	}
	ev.mu.Lock()
	readies := len(ev.ready)
	ev.mu.Unlock()
	if readies != 1 {
		t.Errorf("%d SourceReady events, want 1 (the primary; the backup matches its layout)", readies)
	}
	if err := n.Delete(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Hub("st", 0); err == nil {
		t.Error("the stream outlived its source flow")
	}
}
