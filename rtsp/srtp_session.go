package rtsp

import (
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/meshgw/meshgw/rtp/srtp"
)

// srtpPolicy is what SRTP allows for one SETUP.
type srtpPolicy struct {
	mode SRTPMode
	tls  bool // the request came over RTSPS
	// keyed: the client already holds a key for the track from the description (SDES or
	// MIKEY in DESCRIBE for readers, in ANNOUNCE for publishers), so a plain RTP/AVP
	// transport still carries SRTP (FFmpeg asks for RTP/AVP whatever the SDP says).
	keyed bool
}

// allows reports whether a transport of that profile and delivery may be used.
func (p srtpPolicy) allows(secure, multicast bool) bool {
	if secure {
		// keys travel in headers and SDP: only under TLS; a group cannot have per-reader keys
		return p.mode != SRTPOff && p.tls && !multicast
	}
	if p.keyed {
		return !multicast
	}
	return p.mode != SRTPRequired
}

// why explains a refusal the policy caused, for the status line and the log.
func (p srtpPolicy) why() string {
	switch {
	case p.mode == SRTPRequired && !p.tls:
		return "; the route requires SRTP, which is only offered over rtsps://"
	case p.mode == SRTPRequired:
		return "; the route requires SRTP: RTP/SAVP with MIKEY, or RTP/AVP after a DESCRIBE that gave a=crypto keys"
	case p.mode == SRTPOff:
		return "; SRTP (RTP/SAVP) is off for this route"
	}
	return ""
}

func (ss *session) readPolicy(c *conn) srtpPolicy {
	p := srtpPolicy{mode: srtpModeOf(ss.read), tls: c.secure}
	if p.mode != SRTPOff && p.tls {
		c.mu.Lock()
		p.keyed = c.described[ss.path] != nil
		c.mu.Unlock()
	}
	return p
}

func (ss *session) recordPolicy(c *conn, track int) srtpPolicy {
	p := srtpPolicy{mode: srtpModeOf(ss.pub), tls: c.secure}
	p.keyed = p.mode != SRTPOff && p.tls && track < len(ss.pubKeys) && ss.pubKeys[track] != nil
	return p
}

// readerKey is the key a reader's track is protected with, nil for plain RTP. A secure
// transport takes the key its DESCRIBE gave, or a new one the SETUP answer hands over.
func (ss *session) readerKey(c *conn, req *base.Request, track int, secure bool, sp srtpPolicy) (*srtp.Key, *base.Response) {
	if !secure && !sp.keyed {
		return nil, nil
	}
	if h, ok := req.Header["KeyMgmt"]; ok && secure {
		// the player's key for its own RTCP: meshgw reads reader RTCP only as a sign of
		// life, but a header it cannot parse is still a bad request
		if _, err := keyMgmtParams(h, time.Now()); err != nil {
			return nil, statusf(base.StatusBadRequest, "%v", err)
		}
	}
	c.mu.Lock()
	keys := c.described[ss.path]
	c.mu.Unlock()
	if track < len(keys) {
		k := keys[track].key
		return &k, nil
	}
	k, err := srtp.NewKey()
	if err != nil {
		return nil, errResponse(err)
	}
	return &k, nil
}

// publisherKey is the key a publisher's track is unprotected with, nil for plain RTP: the
// SETUP's KeyMgmt header first (RFC 4567 §3.1), then the ANNOUNCE's key attributes.
func (ss *session) publisherKey(req *base.Request, track int, secure bool, sp srtpPolicy) (*SRTPParams, *base.Response) {
	if !secure && !sp.keyed {
		return nil, nil
	}
	if h, ok := req.Header["KeyMgmt"]; ok && secure {
		p, err := keyMgmtParams(h, time.Now())
		if err != nil {
			return nil, statusf(base.StatusBadRequest, "%v", err)
		}
		return &p, nil
	}
	if track < len(ss.pubKeys) && ss.pubKeys[track] != nil {
		return ss.pubKeys[track], nil
	}
	return nil, statusf(base.StatusBadRequest, "RTP/SAVP needs a key: a KeyMgmt header or a=key-mgmt in the ANNOUNCE")
}

// withKeyMgmt adds the KeyMgmt header carrying k to a successful SETUP answer.
func withKeyMgmt(res *base.Response, req *base.Request, k srtp.Key, ssrc *uint32) *base.Response {
	if res.StatusCode != base.StatusOK {
		return res
	}
	var ssrcs []uint32
	if ssrc != nil {
		ssrcs = []uint32{*ssrc}
	}
	h, err := keyMgmtHeader(req.URL.String(), k, ssrcs)
	if err != nil {
		return errResponse(err)
	}
	res.Header["KeyMgmt"] = h
	return res
}

// describeKeys draws the keys a secure DESCRIBE hands a reader, one per track, and keeps
// them on the connection for its SETUPs; nil (plain description) over plain RTSP or on a
// route without SRTP. Every DESCRIBE draws new keys: no two readers share one.
func (c *conn) describeKeys(rs ReadStream, path string) ([]mediaKey, error) {
	if !c.secure || srtpModeOf(rs) == SRTPOff {
		return nil, nil
	}
	keys := make([]mediaKey, len(rs.Tracks()))
	for i := range keys {
		k, err := srtp.NewKey()
		if err != nil {
			return nil, err
		}
		keys[i].key = k
	}
	c.mu.Lock()
	if c.described == nil || len(c.described) >= maxSDPTracks {
		// a client describing route after route on one connection must not grow it without bound
		c.described = map[string][]mediaKey{}
	}
	c.described[path] = keys
	c.mu.Unlock()
	return keys, nil
}
