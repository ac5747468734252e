//go:build linux

package main

import "testing"

// FuzzSDPMedias feeds sdpMedias what a gateway's DESCRIBE answer could hold:
// it must not panic, and a description it accepts has a control URL per media.
func FuzzSDPMedias(f *testing.F) {
	f.Add([]byte("v=0\r\nm=video 0 RTP/AVP 96\r\na=control:trackID=0\r\n"))
	f.Add([]byte("v=0\r\na=key-mgmt:mikey AQAF\r\nm=video 0 RTP/SAVP 96\r\nm=audio 0 RTP/SAVP 97\r\na=control:rtsps://h/x/trackID=1\r\n"))
	f.Add([]byte("m=video 0 RTP/SAVP 96\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\na=control:*\n"))
	f.Add([]byte("a=control:\r\n"))
	f.Fuzz(func(t *testing.T, sdp []byte) {
		ms, err := sdpMedias(sdp, "rtsps://h:1/x")
		if err != nil {
			return
		}
		if len(ms) == 0 {
			t.Fatal("no media and no error")
		}
		for i, m := range ms {
			if m.control == "" {
				t.Fatalf("media %d has no control URL", i)
			}
		}
	})
}
