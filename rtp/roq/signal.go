package roq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The signalling exchange. The draft leaves naming a session to the application; meshgw's is
// one request line on the first bidirectional stream the client opens, answered on the same
// stream, which then stays open for the session's life (either side closing it ends the session):
//
//	request:  PLAY <path> [datagram|stream] LF
//	      or  PUSH <path> <datagram|stream> <sdp length> LF <sdp bytes>   (a publisher)
//	answer:   <code> <reason> LF
//	          flow <track> <rtp flow ID> <rtcp flow ID> LF   (one per track, on 200 only)
//	          mode <datagram|stream> LF
//	          sdp <length> LF
//	          <length bytes of SDP>
//
// Codes follow HTTP's meaning: 200, 400, 403, 404, 503. RTP and RTCP of a track use two flow
// IDs (RTP 2·track, RTCP 2·track+1), so track 0's RTP is flow 0.

// Mode is how the server sends media: one packet per DATAGRAM (the default; packets too large
// for one go on a stream) or on unidirectional streams, one per frame.
type Mode uint8

// Modes.
const (
	Datagram Mode = iota
	Stream
)

func (m Mode) String() string {
	if m == Stream {
		return "stream"
	}
	return "datagram"
}

func parseMode(s string) (Mode, error) {
	switch s {
	case "datagram":
		return Datagram, nil
	case "stream":
		return Stream, nil
	}
	return 0, fmt.Errorf("roq: unknown mode %q (want datagram or stream)", s)
}

// Limits of the exchange: a line, a path, the tracks and SDP of an answer.
const (
	MaxRequest = 1024
	maxPath    = 512
	maxTracks  = 64
	maxSDP     = 64 << 10
)

// ErrBadRequest is wrapped by every request parse error.
var ErrBadRequest = errors.New("roq: bad request")

// Request is what a client asks for.
type Request struct {
	Path string // the route's path, starting with "/"
	Mode Mode
	// SDP is a publisher's session description (PUSH); nil for a reader (PLAY).
	SDP []byte
}

// Push reports whether the request publishes into the route.
func (r Request) Push() bool { return r.SDP != nil }

// AppendRequest appends r's request.
func AppendRequest(dst []byte, r Request) []byte {
	if r.Push() {
		dst = fmt.Appendf(dst, "PUSH %s %s %d\n", r.Path, r.Mode, len(r.SDP))
		return append(dst, r.SDP...)
	}
	dst = append(dst, "PLAY "...)
	dst = append(dst, r.Path...)
	dst = append(dst, ' ')
	dst = append(dst, r.Mode.String()...)
	return append(dst, '\n')
}

// ReadRequest reads one request: its line of at most MaxRequest bytes and a publisher's SDP.
func ReadRequest(r *bufio.Reader) (Request, error) {
	line, err := readLine(r, MaxRequest)
	if err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	req, n, err := parseRequestLine(line)
	if err != nil || n == 0 {
		return req, err
	}
	req.SDP = make([]byte, n)
	if _, err := io.ReadFull(r, req.SDP); err != nil {
		return Request{}, fmt.Errorf("%w: sdp: %w", ErrBadRequest, err)
	}
	return req, nil
}

// ParseRequest parses a PLAY request line without its LF.
func ParseRequest(line string) (Request, error) {
	req, n, err := parseRequestLine(line)
	if err == nil && n != 0 {
		return Request{}, fmt.Errorf("%w: PUSH carries an SDP after its line; use ReadRequest", ErrBadRequest)
	}
	return req, err
}

// parseRequestLine parses a request line; n is the length of the SDP that follows a PUSH.
func parseRequestLine(line string) (req Request, n int, err error) {
	f := strings.Split(line, " ")
	switch {
	case len(f) == 4 && f[0] == "PUSH":
		n, err = strconv.Atoi(f[3])
		if err != nil || n <= 0 || n > maxSDP {
			return Request{}, 0, fmt.Errorf("%w: sdp length %q (1-%d)", ErrBadRequest, trim(f[3]), maxSDP)
		}
	case (len(f) == 2 || len(f) == 3) && f[0] == "PLAY":
	default:
		return Request{}, 0, fmt.Errorf("%w: want \"PLAY <path> [datagram|stream]\" or \"PUSH <path> <mode> <sdp length>\", got %q", ErrBadRequest, trim(line))
	}
	req.Path = f[1]
	if err := checkPath(req.Path); err != nil {
		return Request{}, 0, err
	}
	if len(f) >= 3 {
		m, err := parseMode(f[2])
		if err != nil {
			return Request{}, 0, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		req.Mode = m
	}
	return req, n, nil
}

func checkPath(p string) error {
	if len(p) == 0 || p[0] != '/' || len(p) > maxPath {
		return fmt.Errorf("%w: path must start with / and be at most %d bytes", ErrBadRequest, maxPath)
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] == 0x7f {
			return fmt.Errorf("%w: control character or space in path", ErrBadRequest)
		}
	}
	return nil
}

// trim shortens what an error quotes.
func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// FlowIDs are the flows of one track.
type FlowIDs struct {
	RTP, RTCP uint64
}

// TrackFlows gives track's flow IDs under meshgw's numbering.
func TrackFlows(track int) FlowIDs {
	return FlowIDs{RTP: uint64(2 * track), RTCP: uint64(2*track + 1)}
}

// Answer is the server's reply.
type Answer struct {
	Code   int
	Reason string
	Flows  []FlowIDs // by track
	Mode   Mode
	SDP    []byte
}

// AppendAnswer appends a's wire form.
func AppendAnswer(dst []byte, a Answer) []byte {
	dst = strconv.AppendInt(dst, int64(a.Code), 10)
	dst = append(dst, ' ')
	dst = append(dst, strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, a.Reason)...)
	dst = append(dst, '\n')
	if a.Code != 200 {
		return dst
	}
	for i, f := range a.Flows {
		dst = fmt.Appendf(dst, "flow %d %d %d\n", i, f.RTP, f.RTCP)
	}
	dst = fmt.Appendf(dst, "mode %s\nsdp %d\n", a.Mode, len(a.SDP))
	return append(dst, a.SDP...)
}

// ErrBadAnswer is wrapped by every answer parse error.
var ErrBadAnswer = errors.New("roq: bad answer")

// ReadAnswer reads a server's answer. A refusal (code other than 200) is returned with a nil
// error: the caller reports its code and reason.
func ReadAnswer(r *bufio.Reader) (Answer, error) {
	bad := func(format string, args ...any) (Answer, error) {
		return Answer{}, fmt.Errorf("%w: "+format, append([]any{ErrBadAnswer}, args...)...)
	}
	line, err := readLine(r, MaxRequest)
	if err != nil {
		return bad("status line: %w", err)
	}
	code, reason, _ := strings.Cut(line, " ")
	c, err := strconv.Atoi(code)
	if err != nil || c < 100 || c > 999 {
		return bad("status %q", trim(code))
	}
	a := Answer{Code: c, Reason: reason}
	if c != 200 {
		return a, nil
	}
	for {
		line, err := readLine(r, MaxRequest)
		if err != nil {
			return bad("%w", err)
		}
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "flow":
			f := strings.Fields(val)
			if len(f) != 3 {
				return bad("flow line %q", trim(line))
			}
			var n [3]uint64
			for i, s := range f {
				if n[i], err = strconv.ParseUint(s, 10, 64); err != nil || n[i] > MaxFlowID {
					return bad("flow line %q", trim(line))
				}
			}
			if n[0] != uint64(len(a.Flows)) || len(a.Flows) >= maxTracks {
				return bad("flow lines out of order or more than %d", maxTracks)
			}
			a.Flows = append(a.Flows, FlowIDs{RTP: n[1], RTCP: n[2]})
		case "mode":
			if a.Mode, err = parseMode(val); err != nil {
				return bad("%w", err)
			}
		case "sdp":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > maxSDP {
				return bad("sdp length %q", trim(val))
			}
			a.SDP = make([]byte, n)
			if _, err := io.ReadFull(r, a.SDP); err != nil {
				return bad("sdp: %w", err)
			}
			if len(a.Flows) == 0 {
				return bad("no flow lines")
			}
			return a, nil
		default:
			return bad("unknown line %q", trim(line))
		}
	}
}

// readLine reads one LF-terminated line of at most max bytes, without its LF.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(b)+len(frag) > max+1 {
			return "", fmt.Errorf("line longer than %d bytes", max)
		}
		b = append(b, frag...)
		if err == nil {
			return string(bytes.TrimSuffix(b, []byte{'\n'})), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}
