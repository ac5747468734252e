package node

import (
	"errors"
	"fmt"
	"sync"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/memifrtp"
	"github.com/meshgw/meshgw/rtp/st2110"
)

// st2110SourceConfig turns a SourceST2110 flow into the receiver's configuration: one track per
// essence of its SDP, each on its own group (or unicast address) and port, joined for the
// a=source-filter sender; two legs when the SDP groups its m= lines a=group:DUP. Readers get
// the session's ReaderSDP. It is also the flow's validation.
func st2110SourceConfig(f ST2110Source) (rtp.RTPSourceConfig, *st2110.Session, error) {
	var cfg rtp.RTPSourceConfig
	sess, err := st2110.ParseSDP([]byte(f.SDP))
	if err != nil {
		return cfg, nil, err
	}
	legs := len(sess.Essences[0].Legs)
	cfg.Legs = make([]rtp.RTPLeg, legs)
	for i, e := range sess.Essences {
		if len(e.Legs) != legs {
			return cfg, nil, fmt.Errorf("essence %d has %d legs and essence 1 %d: 2022-7 for all essences or none", i+1, len(e.Legs), legs)
		}
		cfg.Tracks = append(cfg.Tracks, rtp.Track{Media: e.Media, PayloadType: e.PayloadType, ClockRate: e.ClockRate})
		for l, leg := range e.Legs {
			cfg.Legs[l].Addrs = append(cfg.Legs[l].Addrs, leg.Dest)
			cfg.Legs[l].Sources = append(cfg.Legs[l].Sources, leg.Source)
			cfg.Legs[l].Ports = append(cfg.Legs[l].Ports, leg.Port)
		}
	}
	if f.Skew < 0 || f.Skew > maxSkew {
		return cfg, nil, fmt.Errorf("skew %v out of range 0..%v", f.Skew, maxSkew)
	}
	cfg.SDP = sess.ReaderSDP()
	cfg.Skew, cfg.Interface, cfg.NoRTCP = f.Skew, f.Interface, true
	return cfg, sess, nil
}

// st2110Source runs a SourceST2110 flow: rtp.RTPSource receives (sockets, SSM joins, the 2022-7
// merge) and a tap reassembles each video essence's frames on the way to the hubs, so the
// packets reach RTSP readers unchanged (RFC 4175 over RTSP) and the frames are counted.
type st2110Source struct {
	src *rtp.RTPSource
	tap *st2110Tap
}

func (r *st2110Source) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		sp := fl.spec.Spec.(ST2110Source)
		cfg, sess, err := st2110SourceConfig(sp)
		if err != nil {
			return nil, err
		}
		cfg.Pool = n.pool
		cfg.Logger = n.log.With("stream", fl.spec.Stream, "source", "st2110")
		stream := fl.spec.Stream
		tap, err := newST2110Tap(sess, n.newStreamInput(fl, sp.Pacing, false), func(track int) st2110.FrameSink {
			if ff := n.memifFanout(stream, track); ff != nil {
				return ff
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		src, err := rtp.NewRTPSource(cfg, tap)
		if err != nil {
			return nil, err
		}
		r.src, r.tap = src, tap
		return nil, nil
	})
}

func (r *st2110Source) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

func (r *st2110Source) stats(_ *Local, _ *flow) FlowStats {
	st := rtpSourceStats(r.src)
	st.ST2110 = r.tap.stats()
	st.ST2110Timing = r.tap.timing()
	return st
}

func (r *st2110Source) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), func() {
		r.src.Close()
		tm := r.tap.timing()
		for i, s := range r.tap.stats() {
			n.log.Info("st2110 source stopped", "stream", fl.spec.Stream, "video", i+1, "frames", s.Frames,
				"incomplete", s.Incomplete, "late", s.Late, "late_frames", s.LateFrames, "lost", s.Lost, "malformed", s.Malformed, "no_buffer", s.NoBuffer,
				"cinst_max", tm[i].CInstMax, "cmax", tm[i].CMax, "vrx_max", tm[i].VRXMax, "vrx_full", tm[i].VRXFull,
				"2110_21", map[bool]string{true: "compliant", false: "not compliant"}[tm[i].Compliant()])
		}
	})
}

// st2110Tap is the rtp.SourceHandler between the receiver and the stream's input: each packet
// of a video essence also goes through that essence's reassembler.
type st2110Tap struct {
	next  rtp.SourceHandler
	video []*st2110Video // per track, nil for other essences
	order []*st2110Video // the video essences in SDP order
}

// st2110Video is one video essence's reassembler and its ST 2110-21 meter; mu serialises the
// two 2022-7 legs' output, which the merger may hand over from either leg's goroutine.
type st2110Video struct {
	mu sync.Mutex
	r  *st2110.Reassembler
	v  *st2110.Video
	tp string
	// meter starts once the first complete frame gave the packets per frame.
	meter  *st2110.TimingMeter
	frames uint64
}

// write reassembles one packet and measures its arrival (taken here, after the socket read
// batch: a reading on a loaded host is pessimistic).
func (v *st2110Video) write(pkt []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.r.WriteRTP(pkt)
	if v.meter == nil {
		st := v.r.Stats()
		if st.Frames == 0 || st.Frames == v.frames {
			v.frames = st.Frames
			return
		}
		// the first complete frame ended with this packet: its packets set the model
		v.meter = st2110.NewTimingMeter(st2110.NewTiming(v.v, v.tp, int(st.Packets/st.Frames)))
		return
	}
	v.meter.Packet(rtp.Now(), len(pkt) > 1 && pkt[1]&0x80 != 0)
}

// newST2110Tap reassembles each video essence of sess; sinkOf gives the local consumer of a
// track's frames (the memif frames form), nil when the node has none.
func newST2110Tap(sess *st2110.Session, next rtp.SourceHandler, sinkOf func(track int) st2110.FrameSink) (*st2110Tap, error) {
	t := &st2110Tap{next: next, video: make([]*st2110Video, len(sess.Essences))}
	for i, e := range sess.Essences {
		if e.Kind != st2110.KindVideo {
			continue
		}
		// Without a local consumer the reassembler counts and recycles its frames; with one, the
		// consumers' queues pin up to FrameQueueDepth frames each beside the one being filled.
		rc := st2110.ReassemblerConfig{Video: e.Video, Frames: 2}
		if sink := sinkOf(i); sink != nil {
			rc.Sink, rc.Frames = sink, 2+2*memifrtp.FrameQueueDepth
		}
		r, err := st2110.NewReassembler(rc)
		if err != nil {
			return nil, fmt.Errorf("video essence %d: %w", i+1, err)
		}
		tp := e.Video.TP
		if tp == "" {
			tp = st2110.TPW // a sender that does not say is judged by the loosest limits
		}
		v := &st2110Video{r: r, v: e.Video, tp: tp}
		t.video[i] = v
		t.order = append(t.order, v)
	}
	return t, nil
}

func (t *st2110Tap) OnReady(sdp []byte, tracks []rtp.Track) error { return t.next.OnReady(sdp, tracks) }

func (t *st2110Tap) WriteRTP(track int, pkt []byte) {
	if track < len(t.video) {
		if v := t.video[track]; v != nil {
			v.write(pkt)
		}
	}
	t.next.WriteRTP(track, pkt)
}

func (t *st2110Tap) WriteRTCP(track int, pkt []byte) { t.next.WriteRTCP(track, pkt) }

func (t *st2110Tap) OnDisconnect(err error) {
	if !errors.Is(err, rtp.ErrClosed) {
		for _, v := range t.order {
			v.mu.Lock()
			v.r.Flush()
			v.mu.Unlock()
		}
	}
	t.next.OnDisconnect(err)
}

func (t *st2110Tap) stats() []st2110.ReassemblerStats {
	out := make([]st2110.ReassemblerStats, len(t.order))
	for i, v := range t.order {
		out[i] = v.r.Stats()
	}
	return out
}

// timing is each video essence's ST 2110-21 reading (zero before its second frame).
func (t *st2110Tap) timing() []st2110.TimingReading {
	out := make([]st2110.TimingReading, len(t.order))
	for i, v := range t.order {
		v.mu.Lock()
		if v.meter != nil {
			out[i] = v.meter.Reading()
		}
		v.mu.Unlock()
	}
	return out
}
