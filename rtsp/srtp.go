package rtsp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/mikey"

	"github.com/meshgw/meshgw/rtp/srtp"
)

// SRTPMode is a route's SRTP policy.
type SRTPMode int

// The SRTP policies of a route.
const (
	// SRTPOff serves and accepts plain RTP only; RTP/SAVP transports get 461.
	SRTPOff SRTPMode = iota
	// SRTPOptional offers SRTP over RTSPS (keys by MIKEY and SDES) and still
	// serves plain RTP to clients that ask for it without having taken keys.
	SRTPOptional
	// SRTPRequired serves and accepts SRTP only: a plain transport gets 461
	// Unsupported Transport, and so does any transport over plain RTSP,
	// since keys must not travel in clear.
	SRTPRequired
)

// String names the mode as the config spells it.
func (m SRTPMode) String() string {
	switch m {
	case SRTPOptional:
		return "optional"
	case SRTPRequired:
		return "required"
	default:
		return "off"
	}
}

// SRTPParams key one track's SRTP in one direction: the master key and salt
// (AES_CM_128_HMAC_SHA1_80) and, for a sender that announced them by MIKEY,
// the rollover counter each SSRC starts at.
type SRTPParams struct {
	Key  srtp.Key
	ROCs map[uint32]uint32
}

// String redacts the key.
func (p SRTPParams) String() string {
	return fmt.Sprintf("SRTPParams{key: redacted, rocs: %d}", len(p.ROCs))
}

// SRTPStream is implemented by a ReadStream or PublishStream whose route may
// use SRTP. Streams without it are plain (SRTPOff).
type SRTPStream interface {
	// SRTPMode is the route's policy.
	SRTPMode() SRTPMode
	// SetupSRTPUDP is SetupUDP for a track whose packets are SRTP: a reader's
	// sink protects with p, a publisher's ingress unprotects with p.
	SetupSRTPUDP(ctx context.Context, track int, rtpAddr, rtcpAddr netip.AddrPort, p SRTPParams) (UDPSetup, error)
}

func srtpModeOf(v any) SRTPMode {
	if s, ok := v.(SRTPStream); ok {
		return s.SRTPMode()
	}
	return SRTPOff
}

// sdesSuite is the one SDES crypto suite offered (RFC 4568 §6.2.1): FFmpeg
// also knows the _32 variant but tags its SRTCP wrongly with it.
const sdesSuite = "AES_CM_128_HMAC_SHA1_80"

// cryptoAttr is the value of an SDES a=crypto attribute carrying k. It has no
// lifetime or MKI: FFmpeg wants the inline key to decode to exactly 30 bytes.
func cryptoAttr(k srtp.Key) string {
	return "1 " + sdesSuite + " inline:" + k.Base64()
}

// ParseCrypto reads the value of an SDES a=crypto attribute (RFC 4568 §9.1),
// "tag suite inline:key||salt[|lifetime][|MKI:len]" with optional session
// parameters, and returns the key. Only AES_CM_128_HMAC_SHA1_80 without MKI,
// key derivation rate 0 and encrypted, authenticated SRTP and SRTCP is
// accepted; anything else is an error naming what is unsupported.
func ParseCrypto(v string) (srtp.Key, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return srtp.Key{}, errors.New("a=crypto: want \"tag suite key-params\"")
	}
	if len(f[0]) < 1 || len(f[0]) > 9 || strings.Trim(f[0], "0123456789") != "" {
		return srtp.Key{}, fmt.Errorf("a=crypto: tag %q is not 1-9 digits", sanitizeLine(f[0]))
	}
	if f[1] != sdesSuite {
		return srtp.Key{}, fmt.Errorf("a=crypto: suite %q is not supported (only %s)", sanitizeLine(f[1]), sdesSuite)
	}
	if strings.Contains(f[2], ";") {
		return srtp.Key{}, errors.New("a=crypto: more than one key is not supported")
	}
	kp, ok := strings.CutPrefix(f[2], "inline:")
	if !ok {
		return srtp.Key{}, errors.New("a=crypto: the key method is not \"inline\"")
	}
	parts := strings.Split(kp, "|")
	if len(parts) > 3 {
		return srtp.Key{}, errors.New("a=crypto: too many |-separated key parameters")
	}
	for _, p := range parts[1:] {
		if strings.Contains(p, ":") {
			return srtp.Key{}, errors.New("a=crypto: MKI is not supported")
		}
		if p == "" || strings.Trim(strings.TrimPrefix(p, "2^"), "0123456789") != "" {
			return srtp.Key{}, fmt.Errorf("a=crypto: lifetime %q is not a number or 2^n", sanitizeLine(p))
		}
	}
	raw, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		return srtp.Key{}, fmt.Errorf("a=crypto: key is not base64: %w", err)
	}
	k, err := srtp.KeyFromBytes(raw)
	if err != nil {
		return srtp.Key{}, fmt.Errorf("a=crypto: %w", err)
	}
	for _, sp := range f[3:] {
		switch {
		case strings.HasPrefix(sp, "KDR="):
			if sp != "KDR=0" {
				return srtp.Key{}, errors.New("a=crypto: a key derivation rate other than 0 is not supported")
			}
		case sp == "UNENCRYPTED_SRTP", sp == "UNENCRYPTED_SRTCP", sp == "UNAUTHENTICATED_SRTP":
			return srtp.Key{}, fmt.Errorf("a=crypto: %s is not supported", sp)
		case strings.HasPrefix(sp, "WSH="), strings.HasPrefix(sp, "FEC_ORDER="):
			// window size hint and FEC order do not change the transform
		default:
			return srtp.Key{}, fmt.Errorf("a=crypto: session parameter %q is not supported", sanitizeLine(sp))
		}
	}
	return k, nil
}

// MIKEY SRTP policy values (RFC 3830 §6.10.1) meshgw sends and accepts.
const (
	mikeyEncAESCM    = 1
	mikeyAuthHMACSHA = 1
	mikeyEncKeyLen   = 16
	mikeyTagLen      = 10
)

// mikeyFor builds the MIKEY message (RFC 3830; RFC 4567 carries it) that
// hands k to a peer: PSK-less, with the key in a NULL-encrypted KEMAC, as
// gortsplib, MediaMTX and Axis cameras do, which is safe only over TLS. ssrcs
// are announced with ROC 0: every meshgw sender starts its context at the
// reader's first packet.
func mikeyFor(k srtp.Key, ssrcs []uint32) (*mikey.Message, error) {
	var csb [4]byte
	rnd := make([]byte, 16)
	if _, err := rand.Read(csb[:]); err != nil {
		return nil, fmt.Errorf("mikey: %w", err)
	}
	if _, err := rand.Read(rnd); err != nil {
		return nil, fmt.Errorf("mikey: %w", err)
	}
	m := &mikey.Message{Header: mikey.Header{
		Version: 1,
		CSBID:   uint32(csb[0])<<24 | uint32(csb[1])<<16 | uint32(csb[2])<<8 | uint32(csb[3]),
	}}
	for _, s := range ssrcs {
		m.Header.CSIDMapInfo = append(m.Header.CSIDMapInfo, mikey.SRTPIDEntry{SSRC: s})
	}
	param := func(t mikey.PayloadSPPolicyParamType, v byte) mikey.PayloadSPPolicyParam {
		return mikey.PayloadSPPolicyParam{Type: t, Value: []byte{v}}
	}
	m.Payloads = []mikey.Payload{
		&mikey.PayloadT{TSValue: ntpTimestamp(time.Now())},
		&mikey.PayloadRAND{Data: rnd},
		&mikey.PayloadSP{PolicyParams: []mikey.PayloadSPPolicyParam{
			param(mikey.PayloadSPPolicyParamTypeEncrAlg, mikeyEncAESCM),
			param(mikey.PayloadSPPolicyParamTypeSessionEncrKeyLen, mikeyEncKeyLen),
			param(mikey.PayloadSPPolicyParamTypeAuthAlg, mikeyAuthHMACSHA),
			// gortsplib checks this field for 10 (it means the tag length there);
			// GStreamer reads the tag length from it too when no tag length is given
			param(mikey.PayloadSPPolicyParamTypeSessionAuthKeyLen, mikeyTagLen),
			param(mikey.PayloadSPPolicyParamTypeSRTPEncrOffOn, 1),
			param(mikey.PayloadSPPolicyParamTypeSRTCPEncrOffOn, 1),
			param(mikey.PayloadSPPolicyParamTypeSRTPAuthOffOn, 1),
		}},
		&mikey.PayloadKEMAC{SubPayloads: []*mikey.SubPayloadKeyData{
			{Type: mikey.SubPayloadKeyDataKeyTypeTEK, KeyData: append([]byte(nil), k[:]...)},
		}},
	}
	return m, nil
}

// ntpTimestamp is t in the 64-bit NTP format MIKEY's T payload uses.
func ntpTimestamp(t time.Time) uint64 {
	const ntpUnix = 2208988800
	return uint64(t.Unix()+ntpUnix)<<32 | uint64(t.Nanosecond())<<32/uint64(time.Second)
}

// mikeyMaxSkew bounds how far a MIKEY timestamp may be from now: the T
// payload is the message's replay protection (RFC 3830 §5.4).
const mikeyMaxSkew = time.Hour

// paramsFromMIKEY extracts the sender's key and starting ROCs from a MIKEY
// message a publisher or camera sent, checking that its policy is the one
// transform meshgw speaks. Parameters left out take RFC 3830's defaults.
func paramsFromMIKEY(m *mikey.Message, now time.Time) (SRTPParams, error) {
	var p SRTPParams
	var sp *mikey.PayloadSP
	var kemac *mikey.PayloadKEMAC
	var ts *mikey.PayloadT
	for _, pl := range m.Payloads {
		switch v := pl.(type) {
		case *mikey.PayloadSP:
			sp = v
		case *mikey.PayloadKEMAC:
			kemac = v
		case *mikey.PayloadT:
			ts = v
		}
	}
	if ts == nil {
		return p, errors.New("mikey: no timestamp payload")
	}
	sec := int64(ts.TSValue>>32) - 2208988800
	if d := now.Sub(time.Unix(sec, 0)); d > mikeyMaxSkew || d < -mikeyMaxSkew {
		return p, fmt.Errorf("mikey: timestamp is %s away from now", d.Round(time.Second))
	}
	if sp != nil {
		for _, pp := range sp.PolicyParams {
			if len(pp.Value) != 1 {
				if pp.Type <= mikey.PayloadSPPolicyParamTypeSRTPPrefixLen {
					return p, fmt.Errorf("mikey: policy parameter %d has %d bytes, want 1", pp.Type, len(pp.Value))
				}
				continue
			}
			v := pp.Value[0]
			bad := false
			switch pp.Type {
			case mikey.PayloadSPPolicyParamTypeEncrAlg:
				bad = v != mikeyEncAESCM
			case mikey.PayloadSPPolicyParamTypeSessionEncrKeyLen:
				bad = v != mikeyEncKeyLen
			case mikey.PayloadSPPolicyParamTypeAuthAlg:
				bad = v != mikeyAuthHMACSHA
			case mikey.PayloadSPPolicyParamTypeSessionAuthKeyLen:
				bad = v != 20 && v != mikeyTagLen // the RFC's 20, or gortsplib's 10
			case mikey.PayloadSPPolicyParamTypeSessionSaltKeyLen:
				bad = v != 14
			case mikey.PayloadSPPolicyParamTypeKeyDerRate:
				bad = v != 0
			case mikey.PayloadSPPolicyParamTypeSRTPEncrOffOn, mikey.PayloadSPPolicyParamTypeSRTCPEncrOffOn,
				mikey.PayloadSPPolicyParamTypeSRTPAuthOffOn:
				bad = v != 1
			case mikey.PayloadSPPolicyParamTypeAuthTagLen:
				bad = v != mikeyTagLen
			}
			if bad {
				return p, fmt.Errorf("mikey: policy parameter %d = %d is not supported (only AES_CM_128_HMAC_SHA1_80)", pp.Type, v)
			}
		}
	}
	if kemac == nil || len(kemac.SubPayloads) != 1 {
		return p, errors.New("mikey: want one key in a KEMAC payload")
	}
	k, err := srtp.KeyFromBytes(kemac.SubPayloads[0].KeyData)
	if err != nil {
		return p, fmt.Errorf("mikey: %w", err)
	}
	p.Key = k
	if len(m.Header.CSIDMapInfo) > 0 {
		p.ROCs = make(map[uint32]uint32, len(m.Header.CSIDMapInfo))
		for _, e := range m.Header.CSIDMapInfo {
			p.ROCs[e.SSRC] = e.ROC
		}
	}
	return p, nil
}

// keyMgmtParams reads a KeyMgmt request header (RFC 4567 §3.1).
func keyMgmtParams(v base.HeaderValue, now time.Time) (SRTPParams, error) {
	var km headers.KeyMgmt
	if err := km.Unmarshal(v); err != nil {
		return SRTPParams{}, fmt.Errorf("KeyMgmt: %w", err)
	}
	return paramsFromMIKEY(km.MikeyMessage, now)
}

// keyMgmtHeader is the KeyMgmt response header carrying k for url.
func keyMgmtHeader(url string, k srtp.Key, ssrcs []uint32) (base.HeaderValue, error) {
	m, err := mikeyFor(k, ssrcs)
	if err != nil {
		return nil, err
	}
	return headers.KeyMgmt{URL: url, MikeyMessage: m}.Marshal()
}

// keyMgmtAttr is the value of an SDP a=key-mgmt attribute carrying k.
func keyMgmtAttr(k srtp.Key, ssrcs []uint32) (string, error) {
	m, err := mikeyFor(k, ssrcs)
	if err != nil {
		return "", err
	}
	b, err := m.Marshal()
	if err != nil {
		return "", fmt.Errorf("mikey: %w", err)
	}
	return "mikey " + base64.StdEncoding.EncodeToString(b), nil
}

// parseKeyMgmtAttr reads an SDP a=key-mgmt value ("mikey BASE64").
func parseKeyMgmtAttr(v string, now time.Time) (SRTPParams, error) {
	data, ok := strings.CutPrefix(strings.TrimSpace(v), "mikey ")
	if !ok {
		return SRTPParams{}, errors.New("a=key-mgmt: only mikey is supported")
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
	if err != nil {
		return SRTPParams{}, fmt.Errorf("a=key-mgmt: %w", err)
	}
	var m mikey.Message
	if err := m.Unmarshal(b); err != nil {
		return SRTPParams{}, fmt.Errorf("a=key-mgmt: %w", err)
	}
	return paramsFromMIKEY(&m, now)
}
