package roq

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/meshgw/meshgw/internal/peertest"
)

// FuzzParseDatagram: any payload parses or fails cleanly, and what parses re-encodes to the
// same packet.
func FuzzParseDatagram(f *testing.F) {
	f.Add(AppendDatagram(nil, 0, peertest.RTPPacket(1, 2, 3, 20)))
	f.Add(AppendDatagram(nil, 1<<40, []byte{0x80, 200}))
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		flow, pkt, err := ParseDatagram(b)
		if err != nil {
			return
		}
		if len(pkt) == 0 || flow > MaxFlowID {
			t.Fatalf("flow %d, %d bytes", flow, len(pkt))
		}
		if again := AppendDatagram(nil, flow, pkt); !bytes.Equal(again[len(again)-len(pkt):], pkt) {
			t.Fatal("round trip")
		}
	})
}

// FuzzStreamReader: any stream gives packets within bounds and ends with an error or EOF,
// never a panic or a loop.
func FuzzStreamReader(f *testing.F) {
	f.Add(AppendStreamPacket(AppendStreamHeader(nil, 4), peertest.RTPPacket(1, 2, 3, 40)))
	f.Add([]byte{1, 0x7f, 0xff})
	f.Add([]byte{0x40, 1, 0x80, 0, 0, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		sr := NewStreamReader(bytes.NewReader(b))
		total := 0
		for range len(b) + 2 {
			p, err := sr.Next()
			if err != nil {
				return
			}
			if len(p) == 0 || len(p) > MaxPacket {
				t.Fatalf("packet of %d bytes", len(p))
			}
			total += len(p)
			if total > len(b) {
				t.Fatalf("read %d bytes of packets from %d", total, len(b))
			}
		}
		t.Fatal("more packets than bytes")
	})
}

// FuzzRequest: the server's request parser refuses cleanly, and what it accepts round-trips.
func FuzzRequest(f *testing.F) {
	f.Add([]byte("PLAY /demo datagram\n"))
	f.Add([]byte("PLAY /a/b stream\n"))
	f.Add([]byte("PLAY /\x00\n"))
	f.Add([]byte("PUSH /pub datagram 5\nv=0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		if len(r.SDP) > maxSDP {
			t.Fatalf("SDP of %d bytes", len(r.SDP))
		}
		again, err := ReadRequest(bufio.NewReader(bytes.NewReader(AppendRequest(nil, r))))
		if err != nil || again.Path != r.Path || again.Mode != r.Mode || !bytes.Equal(again.SDP, r.SDP) {
			t.Fatalf("%+v: round trip %+v %v", r, again, err)
		}
	})
}

// FuzzAnswer: the client's answer parser refuses cleanly and bounds what it keeps.
func FuzzAnswer(f *testing.F) {
	f.Add(AppendAnswer(nil, Answer{Code: 200, Reason: "OK", Flows: []FlowIDs{TrackFlows(0)}, SDP: []byte("v=0\r\n")}))
	f.Add(AppendAnswer(nil, Answer{Code: 404, Reason: "no route"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ReadAnswer(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		if len(a.Flows) > maxTracks || len(a.SDP) > maxSDP || (a.Code == 200 && len(a.Flows) == 0) {
			t.Fatalf("answer out of bounds: %d flows, %d bytes of SDP", len(a.Flows), len(a.SDP))
		}
	})
}
