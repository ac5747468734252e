package cluster

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"maps"
	"math/big"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/gateway/api"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/merge"
	"github.com/meshgw/meshgw/rtp/srtp"
)

// testCAPEM is a self-signed certificate: a pull flow's TLS CA must hold one to validate.
var testCAPEM = func() []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "camera"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}()

var (
	testTracks = []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}, {Media: "audio", PayloadType: 97, ClockRate: 48000}}
	testHubs   = node.Hubs{Pacing: 1.5,
		Continue: []rtp.LinePos{{SSRC: 9, NextSeq: 65535, NextTS: 4e9, At: time.Unix(0, 1700000000123456789), Rate: 312.5}}}
	testKey = bytes.Repeat([]byte{7}, srtp.KeyLen)
)

// fullFlows are one flow per kind with every field of its spec set, so a field the conversion
// forgets shows up.
func fullFlows() map[string]node.Flow {
	flow := func(spec node.Spec) node.Flow {
		return node.Flow{ID: "f1", Version: 7, Stream: "cam", Spec: spec, Meta: map[string]string{"session": "s-1", "reader": "r"}}
	}
	pullBackup := &node.Backup{Source: node.PullSource{URL: "rtsp://10.0.0.2/cam", Transport: "udp",
		ReconnectMin: time.Second, ReconnectMax: 3 * time.Second, TLSCA: testCAPEM, Hubs: testHubs},
		Stall: 700 * time.Millisecond, Mode: node.BackupSwitch}
	return map[string]node.Flow{
		"demo": flow(node.DemoSource{Hubs: testHubs, Backup: &node.Backup{Source: node.DemoSource{Hubs: testHubs},
			Stall: time.Second, Mode: node.BackupMerge}}),
		"pull": flow(node.PullSource{URL: "rtsp://10.0.0.1/cam", Transport: "tcp",
			ReconnectMin: 250 * time.Millisecond, ReconnectMax: 8 * time.Second, TLSCA: testCAPEM, Hubs: testHubs, Backup: pullBackup}),
		"publisher": flow(node.PublisherSource{Tracks: testTracks, Hubs: testHubs}),
		"rtp source": flow(node.RTPSource{URL: "rtp://239.1.1.1:5000", SDP: "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 33\r\n",
			Interface: "eth1", FECColumns: 10, FECRows: 5, Leg2: "rtp://10.0.0.2:6000", Skew: 450 * time.Millisecond,
			Hubs: testHubs, Backup: pullBackup}),
		"st2110 source": flow(node.ST2110Source{SDP: "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=x\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\n" +
			"c=IN IP4 239.1.1.1/32\r\na=rtpmap:96 raw/90000\r\na=fmtp:96 sampling=YCbCr-4:2:2; width=64; height=16; depth=8; exactframerate=50\r\n",
			Interface: "eth1", Skew: 10 * time.Millisecond, Hubs: testHubs}),
		"st2110 sink": flow(node.ST2110Sink{Track: 1, Video: netip.MustParseAddrPort("239.1.1.2:5004"),
			Leg2: netip.MustParseAddrPort("239.2.1.2:5004"), Fmtp: "sampling=YCbCr-4:2:2; width=64; height=16; depth=10; exactframerate=60000/1001",
			PayloadType: 98, TP: "2110TPW", TTL: 8, SDPFile: "/tmp/out.sdp", Paused: true}),
		"relay": flow(node.RelaySource{Tracks: testTracks, SSRCs: []uint32{1, 0xdeadbeef},
			RTP: netip.MustParseAddrPort("[2001:db8::1]:5000"), RTCP: netip.MustParseAddrPort("192.0.2.1:5001"),
			SRTPKey: testKey, NACK: true, NACKWait: 150 * time.Millisecond,
			RTP2: netip.MustParseAddrPort("10.98.0.2:8000"), RTCP2: netip.MustParseAddrPort("10.98.0.2:8001"),
			Skew: 20 * time.Millisecond, Pacing: 2}),
		"udp sink": flow(node.UDPSink{Track: 1, RTP: netip.MustParseAddrPort("[2001:db8::1]:5000"),
			RTCP: netip.MustParseAddrPort("192.0.2.1:5001"), Paused: true, SRTPKey: testKey,
			SRTPResume: &srtp.SendState{SSRC: 9, ROC: 3, MaxSeq: 65535, RTCPIndex: 1<<31 - 1}, NACK: true, SecondPair: true}),
		"multicast sink": flow(node.MulticastSink{Track: 1, RTP: netip.MustParseAddrPort("239.1.1.1:5000"),
			RTCP: netip.MustParseAddrPort("239.1.1.1:5001"), Paused: true}),
		"ingress": flow(node.UDPIngress{Track: 1, RTP: netip.MustParseAddrPort("192.0.2.1:5000"),
			RTCP: netip.MustParseAddrPort("192.0.2.1:5001"), SRTPKey: testKey, SRTPROCs: map[uint32]uint32{0xdeadbeef: 2}}),
		"rtp sink": flow(node.RTPSink{Track: 1, RTP: netip.MustParseAddrPort("127.0.0.1:5000"), RTCP: netip.MustParseAddrPort("127.0.0.1:5001"),
			Paused: true, Output: node.OutputSpec{Leg2: netip.MustParseAddrPort("239.1.2.3:6000"), FECColumns: 10, FECRows: 5,
				FECMode: fec.ModeColumn, TTL: 16}}),
		"memif sink": flow(node.MemifSink{Track: 2, Interface: 7, Paused: true}),
		"memif source": flow(node.MemifSource{Interface: 8, SDP: "v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 33\r\n", Hubs: node.Hubs{Pacing: 1.5,
			Continue: []rtp.LinePos{{SSRC: 1, NextSeq: 2, NextTS: 3, At: time.Unix(0, 4), Rate: 5}}}}),
	}
}

// checkAllSet fails for a zero field of v (a struct), recursing into embedded structs.
func checkAllSet(t *testing.T, name string, v reflect.Value) {
	t.Helper()
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			t.Errorf("%s leaves %s.%s zero; set it so the round trip covers it", name, v.Type().Name(), v.Type().Field(i).Name)
		}
	}
}

func TestFlowRoundTrip(t *testing.T) {
	full := fullFlows()
	kinds := map[node.FlowKind]bool{}
	for name, f := range full {
		// every exported field is set: a new field makes this fail until it is carried
		checkAllSet(t, name, reflect.ValueOf(f))
		checkAllSet(t, name, reflect.ValueOf(f.Spec))
		kinds[f.Kind()] = true
	}
	if len(kinds) != 13 {
		t.Errorf("fullFlows covers %d kinds, want all 13", len(kinds))
	}
	full["minimal"] = node.Flow{ID: "d", Stream: "s", Spec: node.DemoSource{}}
	for name, f := range full {
		b, err := proto.Marshal(FlowToProto(f))
		if err != nil {
			t.Fatalf("%s: marshal: %v", name, err)
		}
		var p api.Flow
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatalf("%s: unmarshal: %v", name, err)
		}
		got, err := FlowFromProto(&p)
		if err != nil {
			t.Fatalf("%s: FlowFromProto: %v", name, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, f)
		}
	}
}

func TestFlowFromProtoErrors(t *testing.T) {
	full := fullFlows()
	ok := func(kind string) *api.Flow { return FlowToProto(full[kind]) }
	cases := map[string]struct {
		p    *api.Flow
		want string
	}{
		"nil":          {nil, "no flow"},
		"no spec":      {&api.Flow{Id: "f1", Stream: "s"}, "flow f1: no spec"},
		"bad rtp":      {with(ok("udp sink"), func(p *api.Flow) { p.GetUdpSink().Rtp = "nope" }), `rtp: address "nope"`},
		"bad rtcp":     {with(ok("relay"), func(p *api.Flow) { p.GetRelay().Rtcp = "1.2.3.4" }), "rtcp"},
		"payload type": {with(ok("relay"), func(p *api.Flow) { p.GetRelay().Tracks[0].PayloadType = 300 }), "payload type 300"},
		"nil track":    {with(ok("publisher"), func(p *api.Flow) { p.GetPublisher().Tracks[1] = nil }), "track 1 is empty"},
		"NaN pacing":   {with(ok("pull"), func(p *api.Flow) { p.GetPull().Hubs.Pacing = nan() }), "pacing"},
		"neg pacing":   {with(ok("relay"), func(p *api.Flow) { p.GetRelay().Pacing = -1 }), "pacing"},
		"bad leg2":     {with(ok("rtp sink"), func(p *api.Flow) { p.GetRtpSink().Output.Leg2 = "x" }), "leg2"},
		"big ttl":      {with(ok("rtp sink"), func(p *api.Flow) { p.GetRtpSink().Output.Ttl = 300 }), "TTL 300"},
		"neg nack":     {with(ok("relay"), func(p *api.Flow) { p.GetRelay().NackWaitNanos = -1 }), "NACK wait"},
		"bad rtp2":     {with(ok("relay"), func(p *api.Flow) { p.GetRelay().Rtp2 = "x" }), "rtp2"},
		"half leg":     {with(ok("relay"), func(p *api.Flow) { p.GetRelay().Rtcp2 = "" }), "second leg needs both"},
		"line seq":     {with(ok("demo"), func(p *api.Flow) { p.GetDemo().Hubs.ContinueLines[0].NextSeq = 70000 }), "sequence number 70000"},
		"line rate":    {with(ok("demo"), func(p *api.Flow) { p.GetDemo().Hubs.ContinueLines[0].Rate = nan() }), "rate"},
		"nil line":     {with(ok("demo"), func(p *api.Flow) { p.GetDemo().Hubs.ContinueLines[0] = nil }), "empty line position"},
		"srtp state":   {with(ok("udp sink"), func(p *api.Flow) { p.GetUdpSink().SrtpResume.MaxSeq = 1 << 16 }), "srtp resume: sequence number 65536"},
		"big FEC":      {with(ok("rtp source"), func(p *api.Flow) { p.GetRtpSource().FecColumns = 300 }), "FEC L×D 300×5"},
		"no addresses": {with(ok("multicast sink"), func(p *api.Flow) { p.GetMulticastSink().Rtp = "" }), "needs RTP and RTCP"},
		"backup of a backup": {with(ok("pull"), func(p *api.Flow) {
			p.GetPull().Backup.GetPull().Backup = &api.Backup{Source: &api.Backup_Demo{Demo: &api.DemoSource{}}}
		}), "backup of its own"},
		"backup without source": {with(ok("pull"), func(p *api.Flow) { p.GetPull().Backup.Source = nil }), "backup without a source"},
		"bad backup":            {with(ok("pull"), func(p *api.Flow) { p.GetPull().Backup.GetPull().Hubs.Pacing = -1 }), `flow f1: backup: pacing`},
		"backup mode":           {with(ok("pull"), func(p *api.Flow) { p.GetPull().Backup.Mode = "hot" }), `backup mode "hot"`},
		"short key":             {with(ok("ingress"), func(p *api.Flow) { p.GetUdpIngress().SrtpKey = p.GetUdpIngress().SrtpKey[:29] }), "SRTP key of 29 bytes"},
	}
	for name, c := range cases {
		_, err := FlowFromProto(c.p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, c.want)
		}
	}
}

func with(p *api.Flow, fn func(*api.Flow)) *api.Flow { fn(p); return p }

func nan() float64 { var z float64; return z / z }

func TestStatsRoundTrip(t *testing.T) {
	for _, st := range []node.FlowStats{
		{Packets: 1, Bytes: 2, Dropped: 3, Errors: 4, LastActivity: time.Unix(1700000000, 5)},
		{Packets: 9, Backup: node.BackupStats{Mode: "switch", Active: "backup", Switches: 3, LastSwitch: time.Unix(1700000001, 6),
			LastReason: "primary delivered nothing for 1s", PrimaryPackets: 7, BackupPackets: 8, Lost: 1}},
		{Packets: 8, Reception: &rtp.ReceptionStats{Reports: 3, FractionLost: 0.25, CumulativeLost: -1, HighestSeq: 70000,
			Jitter: time.Millisecond, RTT: 20 * time.Millisecond, Last: time.Unix(0, 5)}},
		{Packets: 7, SRTP: &srtp.SendState{SSRC: 1, ROC: 2, MaxSeq: 3, RTCPIndex: 4}},
		{Packets: 6, Lines: []rtp.LinePos{{SSRC: 1, NextSeq: 2, NextTS: 3, At: time.Unix(0, 4), Rate: 5}, {SSRC: 6, NextSeq: 7, NextTS: 8, At: time.Unix(9, 0)}}},
		{Packets: 5, RelayLegs: &merge.Stats{Output: 10, Lost: 1, Resets: 2, Overruns: 3, Refilled: 4, Legs: []merge.LegStats{
			{Received: 1, Invalid: 2, First: 3, Duplicates: 4, Late: 5, Lost: 6, Diverged: 7}, {Received: 8}}}},
	} {
		if got := statsFromProto(statsToProto("f", st)); !reflect.DeepEqual(got, st) {
			t.Errorf("stats round trip\n got %+v\nwant %+v", got, st)
		}
	}
}

func TestStatusAndHelloRoundTrip(t *testing.T) {
	st := node.FlowStatus{Source: netip.MustParseAddr("10.1.2.3"), RTPPort: 40000, RTCPPort: 40001, SSRC: 9, NextSeq: 65535, NextTS: 123, PosOK: true}
	got, err := statusFromProto(statusToProto(st))
	if err != nil || got != st {
		t.Errorf("status round trip = %+v, %v", got, err)
	}
	h := Hello{
		Name: "n1", DataAddr: netip.MustParseAddr("10.0.0.2"), RTPPort: 8000, RTCPPort: 8001,
		LiveLiveAddr: netip.MustParseAddr("10.98.0.2"), LiveLiveRTPPort: 8000, LiveLiveRTCPPort: 8001,
		ClientNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Capabilities: []string{"udp", "multicast"},
		BootID: "b", Flows: []node.Flow{fullFlows()["pull"], fullFlows()["relay"]},
		Sources: []SourceState{{Stream: "cam", SDP: []byte("v=0"), Tracks: testTracks, Up: true}},
	}
	back, skipped, err := helloFromProto(helloToProto(h))
	if err != nil || len(skipped) > 0 || !reflect.DeepEqual(back, h) {
		t.Errorf("hello round trip = %+v, %v, %v", back, skipped, err)
	}
	bad := helloToProto(h)
	bad.Flows = append(bad.Flows, &api.Flow{Id: "broken"})
	back, skipped, err = helloFromProto(bad)
	if err != nil || len(skipped) != 1 || len(back.Flows) != 2 {
		t.Errorf("a broken reported flow: flows %d, skipped %v, err %v", len(back.Flows), skipped, err)
	}
	bad.ClientNetworks = []string{"10.0.0.0"}
	if _, _, err := helloFromProto(bad); err == nil {
		t.Errorf("a bad client network was accepted")
	}
}

func TestErrorIs(t *testing.T) {
	err := ackError("n1", "apply", "f", &api.Ack{Code: api.Code_NOT_FOUND, Message: "stream s is not live"})
	if !errors.Is(err, node.ErrNotFound) || !errors.Is(err, &Error{Code: CodeNotFound}) || errors.Is(err, &Error{Code: CodeConflict}) {
		t.Errorf("NOT_FOUND: %v", err)
	}
	if !strings.Contains(err.Error(), "stream s is not live") || !strings.Contains(err.Error(), "n1") {
		t.Errorf("message lost: %v", err)
	}
	if errors.Is(ackError("n1", "apply", "f", &api.Ack{Code: api.Code_CONFLICT}), node.ErrNotFound) {
		t.Errorf("CONFLICT is ErrNotFound")
	}
	if c := codeOf(errors.Join(errors.New("x"), node.ErrNotFound)); c != CodeNotFound {
		t.Errorf("codeOf(wrapped ErrNotFound) = %v", c)
	}
}

// FuzzFlowFromProto: arbitrary bytes that unmarshal as a Flow convert to a clear error or to a
// flow that validates and survives another round trip unchanged; nothing panics. The seeds are
// a full flow of every kind (every arm of the spec oneof), a minimal one and one without spec.
func FuzzFlowFromProto(f *testing.F) {
	seeds := []node.Flow{{ID: "d", Stream: "s", Spec: node.DemoSource{}}, {ID: "n", Stream: "s"}}
	for _, name := range slices.Sorted(maps.Keys(fullFlows())) {
		seeds = append(seeds, fullFlows()[name])
	}
	for _, fl := range seeds {
		b, err := proto.Marshal(FlowToProto(fl))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p api.Flow
		if err := proto.Unmarshal(b, &p); err != nil {
			return
		}
		fl, err := FlowFromProto(&p)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := fl.Validate(); err != nil {
			t.Fatalf("FlowFromProto returned a flow that does not validate: %v", err)
		}
		again, err := FlowFromProto(FlowToProto(fl))
		if err != nil {
			t.Fatalf("second round trip: %v", err)
		}
		if !reflect.DeepEqual(again, fl) {
			t.Fatalf("second round trip changed the flow\n got %+v\nwant %+v", again, fl)
		}
	})
}

func TestRTPSourceStatsRoundTrip(t *testing.T) {
	at := time.Unix(0, 1700000000123456789)
	s := node.FlowStats{Packets: 9, Bytes: 900, Dropped: 1, Errors: 2, LastActivity: at,
		RTPSource: &rtp.RTPSourceStats{Received: 9, Bytes: 900, Invalid: 2, FEC: 4, Recovered: 3, Unrecoverable: 1, Output: 11, Lost: 1,
			Legs: []merge.LegStats{
				{Received: 1, Invalid: 2, First: 3, Duplicates: 4, Late: 5, Lost: 6, Diverged: 7},
				{Received: 7, Invalid: 6, First: 5, Duplicates: 4, Late: 3, Lost: 2, Diverged: 1}}, LastPacket: at}}
	b, err := proto.Marshal(statsToProto("f", s))
	if err != nil {
		t.Fatal(err)
	}
	var p api.FlowStats
	if err := proto.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if got := statsFromProto(&p); !reflect.DeepEqual(got, s) {
		t.Errorf("round trip\n got %+v %+v\nwant %+v %+v", got, got.RTPSource, s, s.RTPSource)
	}
}
