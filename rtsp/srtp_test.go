package rtsp

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/mikey"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"

	"github.com/meshgw/meshgw/rtp/srtp"
)

func newKey(t testing.TB) srtp.Key {
	t.Helper()
	k, err := srtp.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseCrypto(t *testing.T) {
	k := newKey(t)
	b64 := k.Base64()
	for _, ok := range []string{
		cryptoAttr(k),
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^20",
		"12 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|1048576 KDR=0 WSH=64",
	} {
		got, err := ParseCrypto(ok)
		if err != nil {
			t.Errorf("%q: %v", ok, err)
		} else if got != k {
			t.Errorf("%q: wrong key", ok)
		}
	}
	for v, want := range map[string]string{
		"": "want",
		"x AES_CM_128_HMAC_SHA1_80 inline:" + b64:                       "tag",
		"1 AES_CM_128_HMAC_SHA1_32 inline:" + b64:                       "suite",
		"1 AES_256_CM_HMAC_SHA1_80 inline:" + b64:                       "suite",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^20|1:4":         "MKI",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + ";inline:" + b64:    "more than one key",
		"1 AES_CM_128_HMAC_SHA1_80 uri:" + b64:                          "inline",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64[:28]:                  "bytes",
		"1 AES_CM_128_HMAC_SHA1_80 inline:%%%":                          "base64",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + " UNENCRYPTED_SRTP": "UNENCRYPTED_SRTP",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + " KDR=4":            "key derivation rate",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + " FOO=1":            "FOO",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|x":                "lifetime",
	} {
		if _, err := ParseCrypto(v); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want one naming %q", v, err, want)
		}
	}
}

func TestMIKEYRoundTrip(t *testing.T) {
	k := newKey(t)
	attr, err := keyMgmtAttr(k, []uint32{0x11223344})
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseKeyMgmtAttr(attr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if p.Key != k || p.ROCs[0x11223344] != 0 || len(p.ROCs) != 1 {
		t.Fatalf("round trip gave %v %v", p, p.ROCs)
	}
	h, err := keyMgmtHeader("rtsps://h/x/trackID=0", k, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = keyMgmtParams(h, time.Now()); err != nil || p.Key != k {
		t.Fatalf("header round trip: %v", err)
	}
	// the key never shows in the params' text
	if s := fmt.Sprintf("%v %+v", p, p); strings.Contains(s, k.Base64()) || !strings.Contains(s, "redacted") {
		t.Fatalf("params formatted as %q", s)
	}
	// a message from two hours ago is a replay (RFC 3830 §5.4)
	if _, err := parseKeyMgmtAttr(attr, time.Now().Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "timestamp") {
		t.Fatalf("stale MIKEY: err %v", err)
	}
}

func TestMIKEYPolicyChecked(t *testing.T) {
	k := newKey(t)
	for name, edit := range map[string]func(m *mikey.Message){
		"null cipher": func(m *mikey.Message) {
			sp := m.Payloads[2].(*mikey.PayloadSP)
			sp.PolicyParams[0].Value = []byte{0}
		},
		"256-bit key": func(m *mikey.Message) {
			sp := m.Payloads[2].(*mikey.PayloadSP)
			sp.PolicyParams[1].Value = []byte{32}
		},
		"srtp unencrypted": func(m *mikey.Message) {
			sp := m.Payloads[2].(*mikey.PayloadSP)
			sp.PolicyParams[4].Value = []byte{0}
		},
		"32-bit tag": func(m *mikey.Message) {
			sp := m.Payloads[2].(*mikey.PayloadSP)
			sp.PolicyParams = append(sp.PolicyParams, mikey.PayloadSPPolicyParam{Type: mikey.PayloadSPPolicyParamTypeAuthTagLen, Value: []byte{4}})
		},
		"short key": func(m *mikey.Message) {
			m.Payloads[3].(*mikey.PayloadKEMAC).SubPayloads[0].KeyData = k[:16]
		},
		"no key":  func(m *mikey.Message) { m.Payloads = m.Payloads[:3] },
		"no time": func(m *mikey.Message) { m.Payloads = m.Payloads[1:] },
	} {
		m, err := mikeyFor(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := parseKeyMgmtAttr("mikey "+base64.StdEncoding.EncodeToString(b), time.Now()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReaderSDPSecure(t *testing.T) {
	keys := []mediaKey{{key: newKey(t)}, {key: newKey(t), ssrcs: []uint32{5}}}
	out, err := readerSDP([]byte(sampleSDP), "cam", netip.MustParseAddr("127.0.0.1"), 7, keys)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Count(s, "RTP/SAVP") != 2 || strings.Count(s, "a=key-mgmt:mikey ") != 2 || strings.Count(s, "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:") != 2 {
		t.Fatalf("secure SDP lacks profile or keys:\n%s", s)
	}
	// gortsplib (the pull client of other meshgw nodes, MediaMTX) reads it as secure with MIKEY
	var ssd sdp.SessionDescription
	if err := ssd.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&ssd); err != nil {
		t.Fatal(err)
	}
	for i, m := range desc.Medias {
		if !m.Secure || m.KeyMgmtMikey == nil {
			t.Fatalf("media %d: secure %v, mikey %v", i, m.Secure, m.KeyMgmtMikey != nil)
		}
	}
	// and the keys read back, the same through MIKEY and SDES
	got, err := publisherKeys(&ssd, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if got[i] == nil || got[i].Key != keys[i].key {
			t.Fatalf("media %d: key did not read back", i)
		}
	}
	// the plain description has none of it
	plain, err := ReaderSDP([]byte(sampleSDP), "cam", netip.MustParseAddr("127.0.0.1"), 7)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain, []byte("SAVP")) || bytes.Contains(plain, []byte("crypto")) || bytes.Contains(plain, []byte("key-mgmt")) {
		t.Fatalf("plain SDP carries SRTP:\n%s", plain)
	}
}

func TestSRTPPolicy(t *testing.T) {
	for _, c := range []struct {
		p                    srtpPolicy
		secure, multi, allow bool
	}{
		{srtpPolicy{mode: SRTPOff, tls: true}, true, false, false},
		{srtpPolicy{mode: SRTPOff}, false, false, true},
		{srtpPolicy{mode: SRTPOptional}, true, false, false},             // keys never over plain RTSP
		{srtpPolicy{mode: SRTPOptional}, false, false, true},             // plain client on plain RTSP
		{srtpPolicy{mode: SRTPOptional, tls: true}, true, false, true},   // MIKEY
		{srtpPolicy{mode: SRTPOptional, tls: true}, true, true, false},   // no SRTP multicast
		{srtpPolicy{mode: SRTPRequired, tls: true}, false, false, false}, // plain without keys
		{srtpPolicy{mode: SRTPRequired, tls: true, keyed: true}, false, false, true},
		{srtpPolicy{mode: SRTPRequired, tls: true, keyed: true}, false, true, false},
		{srtpPolicy{mode: SRTPRequired}, false, false, false},
	} {
		if got := c.p.allows(c.secure, c.multi); got != c.allow {
			t.Errorf("%+v allows(secure=%v, multicast=%v) = %v, want %v", c.p, c.secure, c.multi, got, c.allow)
		}
	}
}

func FuzzParseCrypto(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:lCHa0+aIkCy7CBww8uzWH7gpBJPoWka+3x9S7lBU")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:lCHa0+aIkCy7CBww8uzWH7gpBJPoWka+3x9S7lBU|2^20|1:4 KDR=0")
	f.Add("9 AES_CM_128_HMAC_SHA1_32 inline:AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		k, err := ParseCrypto(v)
		if err != nil {
			return
		}
		// whatever is accepted names the one suite and round-trips
		if !strings.Contains(v, sdesSuite) {
			t.Fatalf("accepted %q without %s", v, sdesSuite)
		}
		if k2, err := ParseCrypto(cryptoAttr(k)); err != nil || k2 != k {
			t.Fatalf("re-encoded key does not parse back: %v", err)
		}
	})
}

// FuzzMIKEY feeds MIKEY messages (raw bytes, as they come base64-decoded from a=key-mgmt or a
// KeyMgmt header) through gortsplib's decoder and meshgw's policy check.
func FuzzMIKEY(f *testing.F) {
	k := srtp.Key{1, 2, 3}
	m, err := mikeyFor(k, []uint32{1, 2})
	if err != nil {
		f.Fatal(err)
	}
	b, err := m.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:20])
	f.Add([]byte{1, 0, 5, 0, 0, 0, 0, 1, 0, 0})
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		attr := "mikey " + base64.StdEncoding.EncodeToString(b)
		p, err := parseKeyMgmtAttr(attr, now)
		hv := base.HeaderValue{`prot=mikey;uri="rtsps://h/p";data="` + base64.StdEncoding.EncodeToString(b) + `"`}
		p2, err2 := keyMgmtParams(hv, now)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("attribute and header disagree: %v vs %v", err, err2)
		}
		if err == nil && p.Key != p2.Key {
			t.Fatal("attribute and header give different keys")
		}
	})
}

// FuzzPublisherKeys: an announced description with any key attributes yields keys or an error.
func FuzzPublisherKeys(f *testing.F) {
	k := srtp.Key{9}
	attr, err := keyMgmtAttr(k, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(strings.ReplaceAll(sampleSDP, "a=control:stream=0", "a=control:stream=0\r\na=key-mgmt:"+attr)))
	f.Add([]byte(strings.ReplaceAll(sampleSDP, "a=control:stream=1", "a=control:stream=1\r\na=crypto:"+cryptoAttr(k))))
	f.Add([]byte(sampleSDP + "a=key-mgmt:mikey AAAA\r\n"))
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		var ssd sdp.SessionDescription
		if err := ssd.Unmarshal(b); err != nil {
			return
		}
		keys, err := publisherKeys(&ssd, now)
		if err == nil && len(keys) != len(ssd.MediaDescriptions) {
			t.Fatalf("%d keys for %d media", len(keys), len(ssd.MediaDescriptions))
		}
	})
}
