package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

func TestValidateRTPSource(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 6000 RTP/AVP 0\r\n"
	for name, c := range map[string]struct {
		f    RTPSource
		want string
	}{
		"no URL":      {RTPSource{}, "is not rtp://HOST:PORT"},
		"host name":   {RTPSource{URL: "rtp://cam:5000"}, "URL"},
		"odd port":    {RTPSource{URL: "rtp://1.2.3.4:5001"}, "port 5001"},
		"bad SDP":     {RTPSource{URL: "rtp://1.2.3.4:5000", SDP: "nope"}, "SDP"},
		"SDP port 0":  {RTPSource{URL: "rtp://1.2.3.4:5000", SDP: strings.Replace(sdp, "6000", "0", 1)}, "media 2 has port 0"},
		"bad leg 2":   {RTPSource{URL: "rtp://1.2.3.4:5000", Leg2: "rtp://x"}, "leg 2"},
		"leg 2 range": {RTPSource{URL: "rtp://1.2.3.4:5000", SDP: sdp, Leg2: "rtp://1.2.3.4:65000"}, "leg 2: track 2 port 66000"},
		"FEC":         {RTPSource{URL: "rtp://1.2.3.4:5000", FECColumns: 30}, "FEC"},
		"FEC rows":    {RTPSource{URL: "rtp://1.2.3.4:5000", FECRows: 5}, "FEC"},
		"skew":        {RTPSource{URL: "rtp://1.2.3.4:5000", Skew: time.Minute}, "skew"},
	} {
		f := Flow{ID: "f", Stream: "s", Spec: c.f}
		if err := f.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
	ok := Flow{ID: "f", Stream: "s", Spec: RTPSource{URL: "rtp://1.2.3.4:5000", SDP: sdp, Leg2: "rtp://1.2.3.4:7000", FECColumns: 5, FECRows: 5}}
	cfg, err := rtpSourceConfig(ok.Spec.(RTPSource))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tracks) != 2 || cfg.Legs[0].Ports[1] != 6000 || cfg.Legs[1].Ports[0] != 7000 || cfg.Legs[1].Ports[1] != 8000 || !cfg.FEC {
		t.Errorf("config %+v", cfg)
	}
}

// TestRTPSourceFlow applies a source.rtp flow, sends it MPEG-TS-sized RTP packets and wants the
// stream ready with one MPEG-TS track and the counters (with the 5 lost) in Stats; Delete frees
// the ports.
func TestRTPSourceFlow(t *testing.T) {
	ev := &recEvents{}
	n := newLocal(t, ev)
	var port int
	for range 50 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port = c.LocalAddr().(*net.UDPAddr).Port &^ 1
		c.Close()
		_, err = n.Apply(context.Background(), Flow{ID: "src", Stream: "s", Spec: RTPSource{URL: fmt.Sprintf("rtp://127.0.0.1:%d", port)}})
		if err == nil {
			break
		}
		port = 0
	}
	if port == 0 {
		t.Fatal("no free port")
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pkt := make([]byte, 12+1316)
	pkt[0], pkt[1] = 0x80, 33
	send := func(from, to int) {
		for i := from; i < to; i++ {
			binary.BigEndian.PutUint16(pkt[2:], uint16(i))
			_, _ = c.Write(pkt)
		}
	}
	send(0, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev.mu.Lock()
		tracks := ev.tracks["s"]
		ev.mu.Unlock()
		if len(tracks) == 1 {
			if tracks[0] != (rtp.Track{Media: "video", PayloadType: 33, ClockRate: 90000}) {
				t.Fatalf("tracks %+v", tracks)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stream never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	send(1, 100)
	send(105, 110) // 5 lost
	for {
		st, err := n.Stats("src")
		if err != nil {
			t.Fatal(err)
		}
		if st.Packets == 105 {
			if st.Dropped != 5 || st.RTPSource == nil || st.RTPSource.Output != 105 || st.LastActivity.IsZero() {
				t.Errorf("stats %+v %+v", st, st.RTPSource)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := n.Delete(context.Background(), "src"); err != nil {
		t.Fatal(err)
	}
	// the port is free again
	c2, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatalf("port still bound after Delete: %v", err)
	}
	c2.Close()
}
