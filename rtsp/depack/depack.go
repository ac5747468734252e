// Package depack turns a route's RTP tracks back into media units (H.264 and H.265 access
// units, AAC access units, Opus packets) with gortsplib's depacketizers, for the parts of meshgw
// that remux a route (HLS, recording). It sits under rtsp/ because only the rtsp tree imports
// gortsplib.
package depack

import (
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtsp/sdp"
)

// Formats reads a route's session description: the format of each track, in track order (nil
// for a media section without one).
func Formats(b []byte) ([]format.Format, error) {
	ssd, _, err := sdp.Parse(b)
	if err != nil {
		return nil, err
	}
	var desc description.Session
	if err := desc.Unmarshal(ssd); err != nil {
		return nil, fmt.Errorf("route description: %w", err)
	}
	out := make([]format.Format, len(desc.Medias))
	for i, m := range desc.Medias {
		if len(m.Formats) > 0 {
			out[i] = m.Formats[0]
		}
	}
	return out, nil
}

// Track depacketizes one track.
type Track struct {
	// Index is the track's place in the route.
	Index int
	// Format is the track's format as the description gives it (*format.H264, *format.H265,
	// *format.MPEG4Audio or *format.Opus).
	Format format.Format
	decode func(*rtp.Packet) ([][]byte, error)
}

// ErrUnsupported is wrapped by New for a codec it does not depacketize.
var ErrUnsupported = errors.New("codec not supported")

// New makes the depacketizer of track index, or an error naming why the track cannot be carried.
func New(index int, f format.Format) (*Track, error) {
	t := &Track{Index: index, Format: f}
	switch f := f.(type) {
	case *format.H264:
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.decode = func(p *rtp.Packet) ([][]byte, error) {
			au, err := d.Decode(p)
			if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
				return nil, nil
			}
			return au, err
		}
	case *format.H265:
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.decode = func(p *rtp.Packet) ([][]byte, error) {
			au, err := d.Decode(p)
			if errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
				return nil, nil
			}
			return au, err
		}
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil, fmt.Errorf("track %d: AAC without its config in the description: %w", index, ErrUnsupported)
		}
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.decode = func(p *rtp.Packet) ([][]byte, error) {
			aus, err := d.Decode(p)
			if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
				return nil, nil
			}
			return aus, err
		}
	case *format.Opus:
		d, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		t.decode = func(p *rtp.Packet) ([][]byte, error) {
			frame, err := d.Decode(p)
			if err != nil {
				return nil, err
			}
			return [][]byte{frame}, nil
		}
	default:
		return nil, fmt.Errorf("track %d: codec %s: %w (H.264, H.265, AAC and Opus are)", index, f.Codec(), ErrUnsupported)
	}
	return t, nil
}

// IsVideo reports whether the track is H.264 or H.265.
func (t *Track) IsVideo() bool {
	switch t.Format.(type) {
	case *format.H264, *format.H265:
		return true
	}
	return false
}

// Decode takes one RTP packet and returns the units it completes: the NAL units of an H.264 or
// H.265 access unit, AAC access units, or one Opus packet; nil while more packets are needed
// (and for the tail of an access unit whose start was missed). The units may share p's payload:
// p's bytes must stay untouched while they are used.
func (t *Track) Decode(p *rtp.Packet) ([][]byte, error) { return t.decode(p) }
