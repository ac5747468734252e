package sdp

import "github.com/bluenviron/gortsplib/v4/pkg/description"

// TrackCodecs names the codec of each media section of a session
// description, in order, as gortsplib names them ("H264", "H265",
// "MPEG-TS", "MPEG-4 Audio", ...; "" where it has no name for it). A
// description that does not parse gives nil: callers treat its tracks as
// of unknown codec.
func TrackCodecs(sdp []byte) []string {
	ssd, _, err := Parse(sdp)
	if err != nil {
		return nil
	}
	var desc description.Session
	if err := desc.Unmarshal(ssd); err != nil {
		return nil
	}
	out := make([]string, len(desc.Medias))
	for i, m := range desc.Medias {
		if len(m.Formats) > 0 {
			out[i] = m.Formats[0].Codec()
		}
	}
	return out
}
