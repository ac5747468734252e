package sdp

import (
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"

	"github.com/meshgw/meshgw/rtp"
)

// MaxTracks bounds how many media sections a description may carry; each one becomes a hub.
const MaxTracks = 16

// Parse decodes a session description from a publisher or an upstream source and derives its
// tracks, one per media section, in order; it returns the decoded description too, for callers
// that read its attributes. gortsplib's decoder is used because it tolerates what real encoders
// write (VLC's trailing semicolons, shared payload types, missing lines).
func Parse(b []byte) (*sdp.SessionDescription, []rtp.Track, error) {
	var ssd sdp.SessionDescription
	if err := ssd.Unmarshal(b); err != nil {
		return nil, nil, fmt.Errorf("invalid SDP: %w", err)
	}
	if len(ssd.MediaDescriptions) == 0 {
		return nil, nil, fmt.Errorf("invalid SDP: no media sections")
	}
	if len(ssd.MediaDescriptions) > MaxTracks {
		return nil, nil, fmt.Errorf("invalid SDP: %d media sections, at most %d are accepted", len(ssd.MediaDescriptions), MaxTracks)
	}
	var desc description.Session
	if err := desc.Unmarshal(&ssd); err != nil {
		return nil, nil, fmt.Errorf("invalid SDP: %w", err)
	}
	tracks := make([]rtp.Track, len(desc.Medias))
	for i, m := range desc.Medias {
		if len(m.Formats) == 0 {
			return nil, nil, fmt.Errorf("invalid SDP: media %d has no format", i+1)
		}
		f := m.Formats[0]
		tracks[i] = rtp.Track{Media: string(m.Type), PayloadType: f.PayloadType(), ClockRate: uint32(f.ClockRate())}
		if tracks[i].ClockRate == 0 {
			return nil, nil, fmt.Errorf("invalid SDP: media %d has no clock rate", i+1)
		}
	}
	return &ssd, tracks, nil
}
