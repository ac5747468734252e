package roq

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/peertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDatagramRoundTrip(t *testing.T) {
	pkt := peertest.RTPPacket(7, 1, 2, 100)
	for _, flow := range []uint64{0, 1, 63, 64, 16383, 16384, 1<<30 - 1, 1 << 30, MaxFlowID} {
		b := AppendDatagram(nil, flow, pkt)
		f, p, err := ParseDatagram(b)
		if err != nil || f != flow || !bytes.Equal(p, pkt) {
			t.Fatalf("flow %d: got %d %v", flow, f, err)
		}
	}
	// the 1-byte varint for flows below 64: what a peer on the wire sees
	if b := AppendDatagram(nil, 5, []byte{0x80}); !bytes.Equal(b, []byte{5, 0x80}) {
		t.Errorf("flow 5: % x", b)
	}
	if b := AppendDatagram(nil, 64, []byte{0x80}); !bytes.Equal(b, []byte{0x40, 64, 0x80}) {
		t.Errorf("flow 64: % x", b)
	}
	for _, bad := range [][]byte{nil, {0x40}, {0x80, 1, 2}, {3}} {
		if _, _, err := ParseDatagram(bad); err == nil {
			t.Errorf("% x parsed", bad)
		}
	}
}

func TestStreamReader(t *testing.T) {
	var b []byte
	b = AppendStreamHeader(b, 9)
	var want [][]byte
	for i := range 50 {
		p := peertest.RTPPacket(1, uint16(i), 0, 10*i+1)
		want = append(want, p)
		b = AppendStreamPacket(b, p)
	}
	big := make([]byte, MaxPacket)
	want = append(want, big)
	b = AppendStreamPacket(b, big)
	// one byte per read: every varint and packet crosses reads
	for name, r := range map[string]io.Reader{"whole": bytes.NewReader(b), "bytewise": iotest.OneByteReader(bytes.NewReader(b))} {
		sr := NewStreamReader(r)
		if f, err := sr.Flow(); err != nil || f != 9 {
			t.Fatalf("%s: flow %d %v", name, f, err)
		}
		for i, w := range want {
			p, err := sr.Next()
			if err != nil || !bytes.Equal(p, w) {
				t.Fatalf("%s: packet %d: %d bytes, %v", name, i, len(p), err)
			}
		}
		if _, err := sr.Next(); err != io.EOF {
			t.Fatalf("%s: end: %v", name, err)
		}
	}
}

func TestStreamReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty stream", nil, io.ErrUnexpectedEOF},
		{"cut flow ID", []byte{0x40}, io.ErrUnexpectedEOF},
		{"cut length", []byte{1, 0x80, 0}, io.ErrUnexpectedEOF},
		{"cut packet", []byte{1, 5, 1, 2}, io.ErrUnexpectedEOF},
		{"zero length", []byte{1, 0}, ErrZeroLen},
		{"too large", AppendStreamHeader([]byte{1}, MaxPacket+1), ErrTooLarge},
	} {
		sr := NewStreamReader(bytes.NewReader(tc.b))
		var err error
		for range 3 {
			if _, err = sr.Next(); err != nil {
				break
			}
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestStreamReaderAllocs(t *testing.T) {
	b := AppendStreamHeader(nil, 3)
	for range 100 {
		b = AppendStreamPacket(b, peertest.RTPPacket(1, 1, 1, 1200))
	}
	r := bytes.NewReader(b)
	sr := NewStreamReader(r)
	allocs := testing.AllocsPerRun(50, func() {
		r.Reset(b)
		sr.Reset(r)
		for {
			if _, err := sr.Next(); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocs per stream of 100 packets", allocs)
	}
}

func TestRequest(t *testing.T) {
	for _, r := range []Request{{Path: "/demo"}, {Path: "/cams/1", Mode: Stream}, {Path: "/pub", SDP: []byte("v=0\r\n")}} {
		got, err := ReadRequest(bufio.NewReader(bytes.NewReader(AppendRequest(nil, r))))
		if err != nil || got.Path != r.Path || got.Mode != r.Mode || !bytes.Equal(got.SDP, r.SDP) || got.Push() != r.Push() {
			t.Errorf("%+v: got %+v %v", r, got, err)
		}
	}
	if r, err := ParseRequest("PLAY /x"); err != nil || r.Mode != Datagram {
		t.Errorf("no mode: %+v %v", r, err)
	}
	for _, bad := range []string{"", "GET /x", "PLAY", "PLAY x", "PLAY /x fast", "PLAY /x stream extra", "PLAY /a\tb", "PUSH /p datagram", "PUSH /p datagram 0", "PUSH /p datagram 99999999", "PUSH /p datagram 5", "PLAY /" + strings.Repeat("a", 600)} {
		if _, err := ParseRequest(bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ReadRequest(bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 5000)+"\n"), 16)); !errors.Is(err, ErrBadRequest) {
		t.Errorf("long line: %v", err)
	}
}

func TestAnswer(t *testing.T) {
	a := Answer{Code: 200, Reason: "OK", Flows: []FlowIDs{TrackFlows(0), TrackFlows(1)}, Mode: Stream, SDP: []byte("v=0\r\n")}
	got, err := ReadAnswer(bufio.NewReader(bytes.NewReader(AppendAnswer(nil, a))))
	if err != nil || got.Code != 200 || len(got.Flows) != 2 || got.Flows[1] != (FlowIDs{RTP: 2, RTCP: 3}) || got.Mode != Stream || string(got.SDP) != "v=0\r\n" {
		t.Fatalf("got %+v %v", got, err)
	}
	got, err = ReadAnswer(bufio.NewReader(bytes.NewReader(AppendAnswer(nil, Answer{Code: 404, Reason: "no\nroute"}))))
	if err != nil || got.Code != 404 || got.Reason != "no route" {
		t.Fatalf("refusal: %+v %v", got, err)
	}
	for _, bad := range []string{"", "abc OK\n", "200 OK\nsdp 3\nabc", "200 OK\nflow 1 0 1\nsdp 1\nx", "200 OK\nflow 0 0\n", "200 OK\nwhat\n", "200 OK\nflow 0 0 1\nsdp 99999999\n", "200 OK\nflow 0 0 1\nsdp 5\nab"} {
		if _, err := ReadAnswer(bufio.NewReader(strings.NewReader(bad))); !errors.Is(err, ErrBadAnswer) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
