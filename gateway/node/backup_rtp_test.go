package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// TestBackupOfRTPSource: an rtp:// source (described by an SDP file with the demo clip's layout)
// backed up by the demo. While nothing is sent to the source's port the backup carries the
// stream; once H.264 packets with an IDR arrive there, the selector goes back to the rtp://
// primary at its keyframe. Deleting the flow closes the receiver's sockets (the port binds
// again) and every goroutine (goleak).
func TestBackupOfRTPSource(t *testing.T) {
	n := newLocal(t, &recEvents{})
	clip, err := n.demoClip()
	if err != nil {
		t.Fatal(err)
	}
	vport, _ := peertest.FreeUDPPair(t)
	aport, _ := peertest.FreeUDPPair(t)
	sdp := strings.Replace(string(clip.SDP()), "m=video 0 ", fmt.Sprintf("m=video %d ", vport), 1)
	sdp = strings.Replace(sdp, "m=audio 0 ", fmt.Sprintf("m=audio %d ", aport), 1)
	f := Flow{ID: "src", Version: 1, Stream: "st", Spec: RTPSource{URL: fmt.Sprintf("rtp://127.0.0.1:%d", vport), SDP: sdp, Backup: &Backup{Source: DemoSource{}, Stall: 200 * time.Millisecond, Mode: BackupSwitch}}}
	if _, err := n.Apply(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	waitStats := func(what string, ok func(FlowStats) bool, each func()) FlowStats {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, err := n.Stats("src")
			if err != nil {
				t.Fatal(err)
			}
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: stats %+v", what, st)
			}
			if each != nil {
				each()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := waitStats("the demo backup to carry the silent rtp:// source", func(st FlowStats) bool {
		return st.Backup.Active == "backup" && st.Backup.BackupPackets > 20
	}, nil)
	t.Logf("backup active: %+v", st.Backup)

	conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", vport))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seq := uint16(0)
	send := func() {
		// an IDR slice every packet: the primary's first packet is already a keyframe
		pkt := make([]byte, 12+20)
		pkt[0], pkt[1] = 0x80, 0x80|96
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*3000)
		binary.BigEndian.PutUint32(pkt[8:], 0x5eed)
		pkt[12] = 0x65 // NAL type 5
		seq++
		_, _ = conn.Write(pkt)
	}
	st = waitStats("the rtp:// primary to take the stream back", func(st FlowStats) bool {
		return st.Backup.Active == "primary" && st.Backup.PrimaryPackets > 0
	}, send)
	t.Logf("primary active again: %+v", st.Backup)
	if st.Backup.Switches < 2 {
		t.Errorf("%d switches, want at least 2 (to the backup and back)", st.Backup.Switches)
	}
	if err := n.Delete(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", vport))
	if err != nil {
		t.Fatalf("the rtp:// source's port is still bound after Delete: %v", err)
	}
	c.Close()
}
