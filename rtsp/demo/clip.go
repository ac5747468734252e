// Package demo serves the clip that makes a bare `meshgw` useful: a short
// H.264 + AAC loop embedded in the binary, prepacketized into RTP once and
// replayed in real time by a Player.
package demo

//go:generate ./gen_clip.sh

import (
	"bytes"
	_ "embed" // the clip is compiled into the binary so a bare machine can play it
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	pionrtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtp"
)

//go:embed clip.ts
var clipTS []byte

const (
	tsClockRate = 90000
	// maxPayload keeps every packet below a 1500-byte MTU with room for
	// the RTP header, IP/UDP headers and an SRTP tag added further down the path.
	maxPayload = 1200
	// maxPacket bounds the Player's scratch buffer.
	maxPacket = maxPayload + 64
)

// packet is one prebuilt RTP packet of the loop. seq and ts are relative to
// the start of the loop; the Player adds its own per-loop offsets.
type packet struct {
	track int
	at    time.Duration // send time relative to the loop start
	seq   uint16
	ts    uint32
	data  []byte // marshaled with seq and ts as above and SSRC 0
	abs   int64  // while building: timestamp in the track clock, not yet relative
	dur   int64  // while building: media duration in the track clock (0: unknown)
}

// Clip is a demuxed and packetized clip. It is immutable after Load, so one
// Clip may feed any number of Players.
type Clip struct {
	sdp      []byte
	tracks   []rtp.Track
	duration time.Duration
	pkts     []packet
	// per track: packets per loop (sequence advance) and loop length in
	// the track's clock (timestamp advance).
	loopSeq []uint16
	loopTS  []uint32
}

// Load parses the clip embedded in the binary. It does the demux and
// packetization work each call; callers keep the result and share it. Unlike
// LoadTS it insists that every track loops without a hole or an overlap.
func Load() (*Clip, error) {
	c, err := LoadTS(bytes.NewReader(clipTS))
	if err == nil {
		err = c.checkSeamless()
	}
	if err != nil {
		return nil, fmt.Errorf("demo: embedded clip: %w", err)
	}
	return c, nil
}

// trackBuilder accumulates one media of the clip while the TS is read.
type trackBuilder struct {
	media   *description.Media
	clock   uint32
	pkts    []packet
	first   int64 // first PTS (90 kHz, unwrapped)
	last    int64 // end of the last frame (90 kHz): last PTS + frame duration
	seen    bool
	lastPTS int64
	maxPTS  int64 // differs from lastPTS with B-frames
	minStep int64 // smallest PTS step between frames, the frame duration guess
}

// add records the packets of one frame: dts (90 kHz) paces sending, ts (the
// track clock, absolute) becomes the RTP timestamp.
func (tb *trackBuilder) add(pts, dts, ts, dur int64, pkts []*pionrtp.Packet) error {
	if !tb.seen {
		tb.first, tb.maxPTS, tb.seen = pts, pts, true
	} else if d := pts - tb.lastPTS; d > 0 && (tb.minStep == 0 || d < tb.minStep) {
		tb.minStep = d
	}
	tb.lastPTS = pts
	tb.maxPTS = max(tb.maxPTS, pts)
	for _, p := range pkts {
		p.SSRC = 0
		data, err := p.Marshal()
		if err != nil {
			return fmt.Errorf("marshal RTP: %w", err)
		}
		if len(data) > maxPacket {
			return fmt.Errorf("RTP packet of %d bytes exceeds %d", len(data), maxPacket)
		}
		tb.pkts = append(tb.pkts, packet{at: time.Duration(dts), seq: p.SequenceNumber, abs: ts, dur: dur, data: data})
	}
	return nil
}

// LoadTS demuxes an MPEG-TS holding H.264 and/or AAC (the first track of
// each) and packetizes it for RTP: H.264 per RFC 6184 with SPS/PPS repeated
// in-band before every IDR, AAC per RFC 3640 (AAC-hbr), one access unit per
// packet so audio is paced as smoothly as video.
func LoadTS(r io.Reader) (*Clip, error) {
	rd := &mpegts.Reader{R: r}
	if err := rd.Initialize(); err != nil {
		return nil, fmt.Errorf("read MPEG-TS: %w", err)
	}

	var video, audio *trackBuilder
	var sps, pps []byte
	var decodeErr error
	rd.OnDecodeError(func(err error) {
		if decodeErr == nil {
			decodeErr = err
		}
	})
	var tdVideo, tdAudio mpegts.TimeDecoder

	for _, t := range rd.Tracks() {
		switch codec := t.Codec.(type) {
		case *mpegts.CodecH264:
			if video != nil {
				continue
			}
			forma := &format.H264{PayloadTyp: 96, PacketizationMode: 1}
			enc, err := forma.CreateEncoder()
			if err != nil {
				return nil, fmt.Errorf("H.264 encoder: %w", err)
			}
			enc.PayloadMaxSize = maxPayload
			if err := enc.Init(); err != nil {
				return nil, fmt.Errorf("H.264 encoder: %w", err)
			}
			tb := &trackBuilder{
				media: &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{forma}},
				clock: tsClockRate,
			}
			video = tb
			rd.OnDataH264(t, func(pts, dts int64, au [][]byte) error {
				pts, dts = tdVideo.Decode(pts), tdVideo.Decode(dts)
				au, sps, pps = withParams(au, sps, pps)
				if sps == nil || pps == nil {
					// a decoder cannot use frames before the first parameter sets
					return nil
				}
				pkts, err := enc.Encode(au)
				if err != nil {
					return fmt.Errorf("packetize H.264: %w", err)
				}
				return tb.add(pts, dts, pts, 0, pkts)
			})

		case *mpegts.CodecMPEG4Audio:
			if audio != nil {
				continue
			}
			conf := codec.Config
			forma := &format.MPEG4Audio{
				PayloadTyp:       97,
				ProfileLevelID:   1,
				Config:           &conf,
				SizeLength:       13,
				IndexLength:      3,
				IndexDeltaLength: 3,
			}
			enc, err := forma.CreateEncoder()
			if err != nil {
				return nil, fmt.Errorf("AAC encoder: %w", err)
			}
			enc.PayloadMaxSize = maxPayload
			if err := enc.Init(); err != nil {
				return nil, fmt.Errorf("AAC encoder: %w", err)
			}
			rate := int64(conf.SampleRate)
			if rate <= 0 {
				return nil, errors.New("AAC track without a sample rate")
			}
			tb := &trackBuilder{
				media: &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{forma}},
				clock: uint32(rate),
			}
			audio = tb
			rd.OnDataMPEG4Audio(t, func(pts int64, aus [][]byte) error {
				pts = tdAudio.Decode(pts)
				// AUs after the first in a PES carry no PTS of their own;
				// count them in samples so 44.1 kHz does not accumulate rounding
				ts0 := pts * rate / tsClockRate
				for i, au := range aus {
					ts := ts0 + int64(i)*mpeg4audio.SamplesPerAccessUnit
					auPTS := ts * tsClockRate / rate
					pkts, err := enc.Encode([][]byte{au})
					if err != nil {
						return fmt.Errorf("packetize AAC: %w", err)
					}
					if err := tb.add(auPTS, auPTS, ts, mpeg4audio.SamplesPerAccessUnit, pkts); err != nil {
						return err
					}
				}
				tb.last = pts + int64(len(aus))*mpeg4audio.SamplesPerAccessUnit*tsClockRate/rate
				return nil
			})
		}
	}

	for {
		err := rd.Read()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read MPEG-TS: %w", err)
		}
	}

	var builders []*trackBuilder
	if video != nil && len(video.pkts) > 0 {
		forma := video.media.Formats[0].(*format.H264)
		forma.SPS, forma.PPS = sps, pps
		step := video.minStep
		if step <= 0 {
			step = tsClockRate / 25
		}
		video.last = video.maxPTS + step
		builders = append(builders, video)
	}
	if audio != nil && len(audio.pkts) > 0 {
		builders = append(builders, audio)
	}
	if len(builders) == 0 {
		if decodeErr != nil {
			return nil, fmt.Errorf("no playable H.264 or AAC track: %w", decodeErr)
		}
		return nil, errors.New("no playable H.264 or AAC track")
	}
	return build(builders)
}

// withParams keeps track of the latest SPS/PPS and makes sure every IDR access
// unit carries them, so a player joining mid-stream (or ignoring the SDP) can
// start decoding at the next IDR.
func withParams(au [][]byte, sps, pps []byte) ([][]byte, []byte, []byte) {
	hasSPS, hasPPS, idr := false, false, false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps, hasSPS = append([]byte(nil), n...), true
		case h264.NALUTypePPS:
			pps, hasPPS = append([]byte(nil), n...), true
		case h264.NALUTypeIDR:
			idr = true
		}
	}
	if idr && sps != nil && pps != nil && (!hasSPS || !hasPPS) {
		out := make([][]byte, 0, len(au)+2)
		if !hasSPS {
			out = append(out, sps)
		}
		if !hasPPS {
			out = append(out, pps)
		}
		au = append(out, au...)
	}
	return au, sps, pps
}

// build turns per-track packets into the loop: times and timestamps relative
// to the loop start (keeping the tracks' offsets to each other, which is A/V
// sync) and a loop length that no track overlaps itself in.
//
// The loop is the span of the video when there is video. AAC encoders put a
// priming frame before the real audio (timestamped before the first video
// frame) and padding after it, so the audio track overhangs the video at both
// ends. Audio frames that do not lie wholly inside the loop are dropped:
// keeping the priming frame would stretch every loop by a frame, keeping the
// padding would overlap the next loop, and either would make the frame
// counter visibly stutter at the seam. Whether the audio that remains tiles
// the loop exactly depends on the clip's length; checkSeamless tells.
func build(builders []*trackBuilder) (*Clip, error) {
	var start, span int64
	if builders[0].media.Type == description.MediaTypeVideo {
		v := builders[0]
		start, span = v.first, v.last-v.first
	} else {
		start = builders[0].first
		for _, tb := range builders {
			start = min(start, tb.first)
		}
		for _, tb := range builders {
			span = max(span, tb.last-start)
		}
	}
	if span <= 0 {
		return nil, errors.New("clip has zero duration")
	}

	c := &Clip{
		duration: time.Duration(span) * time.Second / tsClockRate,
		loopSeq:  make([]uint16, len(builders)),
		loopTS:   make([]uint32, len(builders)),
	}
	desc := description.Session{Title: "meshgw demo"}
	for i, tb := range builders {
		tb.media.Control = fmt.Sprintf("trackID=%d", i)
		desc.Medias = append(desc.Medias, tb.media)
		forma := tb.media.Formats[0]
		c.tracks = append(c.tracks, rtp.Track{
			Media:       string(tb.media.Type),
			PayloadType: forma.PayloadType(),
			ClockRate:   tb.clock,
		})
		loopTS := span * int64(tb.clock) / tsClockRate
		c.loopTS[i] = uint32(loopTS)

		ts0 := start * int64(tb.clock) / tsClockRate
		var seq0, kept uint16
		for _, p := range tb.pkts {
			rel := p.abs - ts0
			// frames of known duration (audio) must fit the loop whole;
			// video frames always belong to the loop that defines it
			if p.dur > 0 && (rel < 0 || rel+p.dur > loopTS) {
				continue
			}
			if kept == 0 {
				seq0 = p.seq
			}
			p.track = i
			p.at = (p.at - time.Duration(start)) * time.Second / tsClockRate
			if p.at < 0 {
				p.at = 0 // DTS before the first PTS of the clip: send at once
			}
			p.seq -= seq0
			if p.seq != kept {
				// only leading and trailing packets are dropped, so this
				// cannot happen unless the input's timestamps go backwards
				return nil, fmt.Errorf("track %d: timestamps not monotonic at packet %d", i, kept)
			}
			kept++
			p.ts = uint32(max(rel, 0))
			writeSeqTS(p.data, p.seq, p.ts)
			c.pkts = append(c.pkts, p)
		}
		if kept == 0 {
			return nil, fmt.Errorf("track %d has no packets inside the loop", i)
		}
		c.loopSeq[i] = kept
	}
	// stable: packets of one frame and frames at equal times keep their order
	sort.SliceStable(c.pkts, func(a, b int) bool { return c.pkts[a].at < c.pkts[b].at })

	sdp, err := desc.Marshal(false)
	if err != nil {
		return nil, fmt.Errorf("marshal SDP: %w", err)
	}
	c.sdp = sdp
	return c, nil
}

// checkSeamless reports whether every track tiles the loop exactly: its
// frames are timestamped k*step from the loop start, for k = 0..n-1 with one
// step per track, and the loop is n*step long. Only then is the timestamp
// step across the seam a normal frame step for every track. A clip whose
// length is not a common multiple of all tracks' frame durations fails here
// (gen_clip.sh explains how the embedded one is cut).
func (c *Clip) checkSeamless() error {
	for tr := range c.tracks {
		var frames int64
		var step, last uint32
		for _, p := range c.pkts {
			if p.track != tr || (frames > 0 && p.ts == last) {
				continue // another packet of the same frame
			}
			switch {
			case frames == 0 && p.ts != 0:
				return fmt.Errorf("track %d: first frame at timestamp %d, want 0", tr, p.ts)
			case frames == 1:
				step = p.ts
			case frames > 1 && p.ts-last != step:
				return fmt.Errorf("track %d: frame %d after a step of %d, want %d", tr, frames, p.ts-last, step)
			}
			frames++
			last = p.ts
		}
		if frames < 2 || step == 0 {
			return fmt.Errorf("track %d: %d frames, too few to loop", tr, frames)
		}
		if want := int64(c.loopTS[tr]); frames*int64(step) != want {
			return fmt.Errorf("track %d: %d frames of %d ticks span %d, but the loop is %d: the seam steps by %d",
				tr, frames, step, frames*int64(step), want, want-int64(last))
		}
	}
	return nil
}

// writeSeqTS patches sequence number and timestamp of a marshaled RTP packet
// in place; offsets are fixed by RFC 3550 §5.1.
func writeSeqTS(b []byte, seq uint16, ts uint32) {
	b[2], b[3] = byte(seq>>8), byte(seq)
	b[4], b[5], b[6], b[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
}

// SDP returns the session description announced for the clip (a=control
// "trackID=N" per media, in Tracks order). The caller must not modify it.
func (c *Clip) SDP() []byte { return c.sdp }

// Tracks returns the RTP tracks of the clip, in SDP media order.
func (c *Clip) Tracks() []rtp.Track { return append([]rtp.Track(nil), c.tracks...) }

// Duration is the length of one loop.
func (c *Clip) Duration() time.Duration { return c.duration }
