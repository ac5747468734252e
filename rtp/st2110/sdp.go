package st2110

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
)

// Kind is the essence an m= line carries.
type Kind int

// The essences of ST 2110 meshgw reads.
const (
	KindVideo Kind = iota + 1 // ST 2110-20, raw/90000 (RFC 4175)
	KindAudio                 // ST 2110-30, L24 or L16
	KindAnc                   // ST 2110-40, smpte291/90000 (RFC 8331)
	KindJXSV                  // ST 2110-22 JPEG XS, jxsv/90000 (RFC 9134), passed through
)

func (k Kind) String() string {
	switch k {
	case KindVideo:
		return "video (2110-20)"
	case KindAudio:
		return "audio (2110-30)"
	case KindAnc:
		return "ancillary (2110-40)"
	case KindJXSV:
		return "JPEG XS (2110-22)"
	}
	return "unknown"
}

// Limits of what a description may hold.
const (
	maxFlows   = 16
	maxWidth   = 1 << 15 // the SRD offset and line fields are 15 bits
	maxHeight  = 1 << 15
	maxFrameSz = 256 << 20
)

// Session is a parsed 2110 session description: its flows, with the 2022-7 legs of one essence
// folded together.
type Session struct {
	// Name is s=.
	Name string
	// Essences are the streams in m= order of their first leg; each has one or two legs.
	Essences []Essence
}

// Essence is one stream of the session (a video, an audio, an ANC flow) and the legs it arrives
// on: one, or two grouped a=group:DUP (SMPTE 2022-7).
type Essence struct {
	Kind        Kind
	Media       string // m= media: video, audio
	PayloadType uint8
	Encoding    string // rtpmap encoding name: raw, L24, L16, smpte291, jxsv
	ClockRate   uint32
	// Fmtp is the a=fmtp parameters as written (after the payload type).
	Fmtp string
	// Video is the 2110-20 format (KindVideo), nil otherwise.
	Video *Video
	// Audio is the 2110-30 format (KindAudio), nil otherwise.
	Audio *Audio
	// Legs are where the essence arrives.
	Legs []Leg
}

// Leg is one m= line's transport: the address to bind or the group to join, the UDP port, and
// the SSM sender from a=source-filter (zero: any source).
type Leg struct {
	MID    string
	Dest   netip.Addr
	Port   int
	Source netip.Addr
}

// Video is the ST 2110-20 fmtp of a raw/90000 flow.
type Video struct {
	Sampling    string
	Depth       int
	Width       int
	Height      int
	RateNum     int // exactframerate = RateNum/RateDen
	RateDen     int
	Colorimetry string
	PM          string // 2110GPM or 2110BPM
	SSN         string
	TP          string // 2110TPN, 2110TPNL, 2110TPW ("" when the sender did not say)
	TCS, Range  string
	Interlace   bool
	Segmented   bool
	MaxUDP      int
	TROFF, CMAX int
	PGroup      PGroup
}

// Audio is the ST 2110-30 format of an L24/L16 flow.
type Audio struct {
	BitsPerSample int // 24 or 16
	Rate          int
	Channels      int
	// PTime is a=ptime (0 when absent).
	PTime        time.Duration
	ChannelOrder string
}

// Stride is the bytes of one RFC 4175 line (a line pair for 4:2:0).
func (v *Video) Stride() int { return v.Width / v.PGroup.Pixels * v.PGroup.Bytes }

// FrameSize is the bytes of one frame in RFC 4175 pgroup order.
func (v *Video) FrameSize() int { return v.Stride() * v.Height / v.PGroup.Lines }

// FramePeriod is 1/exactframerate.
func (v *Video) FramePeriod() time.Duration {
	return time.Duration(int64(time.Second) * int64(v.RateDen) / int64(v.RateNum))
}

// ParseSDP reads a 2110 session description as a sender or an NMOS registry publishes it. It
// rejects what meshgw cannot receive with an error naming the line's media and key.
func ParseSDP(b []byte) (*Session, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(b)); err != nil {
		return nil, fmt.Errorf("st2110 SDP: %w", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, errors.New("st2110 SDP: no m= lines")
	}
	if len(sd.MediaDescriptions) > maxFlows {
		return nil, fmt.Errorf("st2110 SDP: %d m= lines, at most %d", len(sd.MediaDescriptions), maxFlows)
	}
	s := &Session{Name: string(sd.SessionName)}
	sessConn := sd.ConnectionInformation
	sessFilter, _ := sessionAttr(sd.Attributes, "source-filter")
	type parsed struct {
		e   Essence
		mid string
	}
	var flows []parsed
	for i, md := range sd.MediaDescriptions {
		e, err := parseMedia(md, sessConn, sessFilter)
		if err != nil {
			return nil, fmt.Errorf("st2110 SDP: m= line %d (%s): %w", i+1, md.MediaName.Media, err)
		}
		flows = append(flows, parsed{e, e.Legs[0].MID})
	}
	// a=group:DUP folds the named m= lines into one essence's legs (RFC 7104).
	used := make([]bool, len(flows))
	var groups [][]int
	for _, a := range sd.Attributes {
		if a.Key != "group" {
			continue
		}
		f := strings.Fields(a.Value)
		if len(f) == 0 || f[0] != "DUP" {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("st2110 SDP: a=group:%s: meshgw merges two legs (2022-7), got %d", a.Value, len(f)-1)
		}
		var g []int
		for _, mid := range f[1:] {
			j := -1
			for k, fl := range flows {
				if fl.mid == mid {
					j = k
				}
			}
			if j < 0 {
				return nil, fmt.Errorf("st2110 SDP: a=group:%s: no m= line has a=mid:%s", a.Value, mid)
			}
			if used[j] {
				return nil, fmt.Errorf("st2110 SDP: a=group:%s: a=mid:%s is in two groups", a.Value, mid)
			}
			used[j] = true
			g = append(g, j)
		}
		a, b := flows[g[0]].e, flows[g[1]].e
		if a.Kind != b.Kind || a.Encoding != b.Encoding || a.ClockRate != b.ClockRate || a.PayloadType != b.PayloadType {
			return nil, fmt.Errorf("st2110 SDP: a=group:%s: the two legs carry different formats", strings.Join(f, " "))
		}
		groups = append(groups, g)
	}
	for j := range flows {
		if used[j] {
			// the group's first member stands for it
			for _, g := range groups {
				if g[0] == j {
					e := flows[j].e
					e.Legs = append(e.Legs, flows[g[1]].e.Legs[0])
					s.Essences = append(s.Essences, e)
				}
			}
			continue
		}
		s.Essences = append(s.Essences, flows[j].e)
	}
	return s, nil
}

// sessionAttr returns the value of the first attribute key.
func sessionAttr(as []sdp.Attribute, key string) (string, bool) {
	for _, a := range as {
		if a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

func parseMedia(md *sdp.MediaDescription, sessConn *sdp.ConnectionInformation, sessFilter string) (Essence, error) {
	var e Essence
	e.Media = md.MediaName.Media
	if p := strings.Join(md.MediaName.Protos, "/"); p != "RTP/AVP" {
		return e, fmt.Errorf("transport %q, ST 2110 is RTP/AVP", p)
	}
	if len(md.MediaName.Formats) != 1 {
		return e, fmt.Errorf("%d payload types, a 2110 flow has one", len(md.MediaName.Formats))
	}
	pt, err := strconv.Atoi(md.MediaName.Formats[0])
	if err != nil || pt < 0 || pt > 127 {
		return e, fmt.Errorf("payload type %q", md.MediaName.Formats[0])
	}
	e.PayloadType = uint8(pt)
	leg := Leg{Port: md.MediaName.Port.Value}
	if leg.Port < 1 || leg.Port > 65535 {
		return e, fmt.Errorf("port %d", leg.Port)
	}
	conn := md.ConnectionInformation
	if conn == nil {
		conn = sessConn
	}
	if conn == nil || conn.Address == nil {
		return e, errors.New("no c= line")
	}
	addr := conn.Address.Address
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i] // TTL or prefix
	}
	if leg.Dest, err = netip.ParseAddr(addr); err != nil {
		return e, fmt.Errorf("c= address %q is not an IP address", conn.Address.Address)
	}
	var rtpmap, fmtp, ptime, filter string
	filter = sessFilter
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap":
			rtpmap = a.Value
		case "fmtp":
			fmtp = a.Value
		case "ptime":
			ptime = a.Value
		case "source-filter":
			filter = a.Value
		case "mid":
			leg.MID = a.Value
		}
	}
	if filter != "" {
		if leg.Source, err = parseSourceFilter(filter, leg.Dest); err != nil {
			return e, err
		}
	}
	e.Legs = []Leg{leg}
	if rtpmap == "" {
		return e, errors.New("no a=rtpmap (2110 payload types are dynamic)")
	}
	num, rest, _ := strings.Cut(rtpmap, " ")
	if num != md.MediaName.Formats[0] {
		return e, fmt.Errorf("a=rtpmap:%s names payload type %s, the m= line %d", rtpmap, num, pt)
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 2 {
		return e, fmt.Errorf("a=rtpmap:%s has no clock rate", rtpmap)
	}
	e.Encoding = parts[0]
	rate, err := strconv.Atoi(parts[1])
	if err != nil || rate <= 0 || rate > 1_000_000 {
		return e, fmt.Errorf("a=rtpmap:%s: clock rate %q", rtpmap, parts[1])
	}
	e.ClockRate = uint32(rate)
	if fmtp != "" {
		n, params, _ := strings.Cut(fmtp, " ")
		if n != md.MediaName.Formats[0] {
			return e, fmt.Errorf("a=fmtp:%s names payload type %s, the m= line %d", fmtp, n, pt)
		}
		e.Fmtp = strings.TrimSpace(params)
	}
	kv := fmtpParams(e.Fmtp)
	switch strings.ToLower(e.Encoding) {
	case "raw":
		e.Kind = KindVideo
		if e.ClockRate != 90000 {
			return e, fmt.Errorf("raw video at clock %d, 2110-20 uses 90000", e.ClockRate)
		}
		if e.Video, err = parseVideo(kv); err != nil {
			return e, err
		}
	case "l24", "l16":
		e.Kind = KindAudio
		a := &Audio{BitsPerSample: 24, Rate: rate, Channels: 1}
		if strings.EqualFold(e.Encoding, "l16") {
			a.BitsPerSample = 16
		}
		if len(parts) > 2 {
			if a.Channels, err = strconv.Atoi(parts[2]); err != nil || a.Channels < 1 || a.Channels > 64 {
				return e, fmt.Errorf("a=rtpmap:%s: channels %q, want 1-64", rtpmap, parts[2])
			}
		}
		if ptime != "" {
			ms, err := strconv.ParseFloat(ptime, 64)
			if err != nil || ms <= 0 || ms > 1000 {
				return e, fmt.Errorf("a=ptime:%s, want milliseconds like 1 or 0.125", ptime)
			}
			a.PTime = time.Duration(ms * float64(time.Millisecond))
		}
		a.ChannelOrder = kv["channel-order"]
		e.Audio = a
	case "smpte291":
		e.Kind = KindAnc
	case "jxsv":
		e.Kind = KindJXSV
	default:
		return e, fmt.Errorf("encoding %q is not ST 2110 (raw, L24, L16, smpte291, jxsv)", e.Encoding)
	}
	return e, nil
}

// parseSourceFilter reads RFC 4570 "incl IN IP4 <dest> <src>" and returns the one included
// source for dest.
func parseSourceFilter(v string, dest netip.Addr) (netip.Addr, error) {
	f := strings.Fields(v)
	if len(f) < 5 || f[0] != "incl" || f[1] != "IN" {
		return netip.Addr{}, fmt.Errorf("a=source-filter:%s: meshgw takes \"incl IN IP4 <group> <source>\"", v)
	}
	if f[3] != "*" {
		d, err := netip.ParseAddr(f[3])
		if err != nil || d != dest {
			return netip.Addr{}, fmt.Errorf("a=source-filter:%s: names %s, the c= line %s", v, f[3], dest)
		}
	}
	if len(f) > 5 {
		return netip.Addr{}, fmt.Errorf("a=source-filter:%s: meshgw joins one source per group", v)
	}
	src, err := netip.ParseAddr(f[4])
	if err != nil {
		return netip.Addr{}, fmt.Errorf("a=source-filter:%s: source %q is not an IP address", v, f[4])
	}
	if src.Is4() != dest.Is4() {
		return netip.Addr{}, fmt.Errorf("a=source-filter:%s: source and group are of different IP versions", v)
	}
	return src, nil
}

// fmtpParams splits "k=v; k2=v2; flag" (keys as written, flags map to "").
func fmtpParams(s string) map[string]string {
	m := map[string]string{}
	for _, p := range strings.Split(s, ";") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

func parseVideo(kv map[string]string) (*Video, error) {
	v := &Video{
		Sampling: kv["sampling"], Colorimetry: kv["colorimetry"], PM: kv["PM"], SSN: kv["SSN"], TP: kv["TP"],
		TCS: kv["TCS"], Range: kv["RANGE"],
	}
	_, v.Interlace = kv["interlace"]
	_, v.Segmented = kv["segmented"]
	num := func(key string, dst *int, lo, hi int, required bool) error {
		s, ok := kv[key]
		if !ok {
			if required {
				return fmt.Errorf("fmtp has no %s", key)
			}
			return nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("fmtp %s=%s, want %d-%d", key, s, lo, hi)
		}
		*dst = n
		return nil
	}
	if v.Sampling == "" {
		return nil, errors.New("fmtp has no sampling")
	}
	depth := kv["depth"]
	if depth == "16f" {
		depth = "16"
	}
	kv["depth"] = depth
	for _, c := range []struct {
		key      string
		dst      *int
		lo, hi   int
		required bool
	}{
		{"depth", &v.Depth, 8, 16, true},
		{"width", &v.Width, 1, maxWidth - 1, true},
		{"height", &v.Height, 1, maxHeight - 1, true},
		{"MAXUDP", &v.MaxUDP, 1460, 8960, false},
		{"TROFF", &v.TROFF, 0, 1_000_000, false},
		{"CMAX", &v.CMAX, 1, 1_000_000, false},
	} {
		if err := num(c.key, c.dst, c.lo, c.hi, c.required); err != nil {
			return nil, err
		}
	}
	var err error
	if v.PGroup, err = pgroupOf(v.Sampling, v.Depth); err != nil {
		return nil, fmt.Errorf("fmtp: %w", err)
	}
	if v.Width%v.PGroup.Pixels != 0 || v.Height%v.PGroup.Lines != 0 {
		return nil, fmt.Errorf("fmtp width=%d height=%d do not fill whole %d×%d pixel groups", v.Width, v.Height, v.PGroup.Pixels, v.PGroup.Lines)
	}
	if v.Interlace && v.Height%(2*v.PGroup.Lines) != 0 {
		return nil, fmt.Errorf("fmtp height=%d cannot split into two interlaced fields", v.Height)
	}
	if v.FrameSize() > maxFrameSz {
		return nil, fmt.Errorf("fmtp: a %d×%d frame is over %d MiB", v.Width, v.Height, maxFrameSz>>20)
	}
	rate, ok := kv["exactframerate"]
	if !ok {
		return nil, errors.New("fmtp has no exactframerate (2110-20 requires it)")
	}
	n, d, hasDen := strings.Cut(rate, "/")
	if v.RateNum, err = strconv.Atoi(n); err != nil || v.RateNum < 1 || v.RateNum > 1_000_000 {
		return nil, fmt.Errorf("fmtp exactframerate=%s", rate)
	}
	v.RateDen = 1
	if hasDen {
		if v.RateDen, err = strconv.Atoi(d); err != nil || v.RateDen < 1 || v.RateDen > 1_000_000 {
			return nil, fmt.Errorf("fmtp exactframerate=%s", rate)
		}
	}
	if v.RateNum/v.RateDen > 1000 {
		return nil, fmt.Errorf("fmtp exactframerate=%s is over 1000 frames/s", rate)
	}
	switch v.PM {
	case "", "2110GPM", "2110BPM":
	default:
		return nil, fmt.Errorf("fmtp PM=%s, want 2110GPM or 2110BPM", v.PM)
	}
	switch v.TP {
	case "", "2110TPN", "2110TPNL", "2110TPW":
	default:
		return nil, fmt.Errorf("fmtp TP=%s, want 2110TPN, 2110TPNL or 2110TPW", v.TP)
	}
	return v, nil
}

// ParseVideoFmtp reads the fmtp parameters of a raw/90000 (RFC 4175 / ST 2110-20) flow as
// written after the payload type; exactframerate is required, since a sender paces by it.
func ParseVideoFmtp(fmtp string) (*Video, error) {
	v, err := parseVideo(fmtpParams(fmtp))
	if err != nil {
		return nil, fmt.Errorf("st2110 fmtp: %w", err)
	}
	return v, nil
}
