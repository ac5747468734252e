package node

import (
	"crypto/tls"
	"crypto/x509"
	"strings"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/roq"
	"github.com/meshgw/meshgw/rtsp/pull"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// roqURL reports whether a pull source's URL names a RoQ server (roq:// or quic://).
func roqURL(u string) bool {
	l := strings.ToLower(u)
	return strings.HasPrefix(l, "roq://") || strings.HasPrefix(l, "quic://")
}

// sdpTracks derives a RoQ upstream's tracks from its description.
func sdpTracks(b []byte) ([]rtp.Track, error) {
	_, tracks, err := sdp.Parse(b)
	return tracks, err
}

// pullSource runs a SourcePull flow: the RTSP pull client, feeding the stream's input.
type pullSource struct {
	clientSource
}

func (r *pullSource) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		f, sp := fl.spec, fl.spec.Spec.(PullSource)
		var tlsCfg *tls.Config
		if len(sp.TLSCA) > 0 {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(sp.TLSCA) // Validate checked it holds a certificate
			tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		if roqURL(sp.URL) {
			// RTP over QUIC from another meshgw's quic: listener (or any RoQ server speaking
			// its signalling): the same flow kind, another client behind the same input
			pr := roq.NewPuller(roq.PullerConfig{URL: sp.URL, TLS: tlsCfg, ReconnectMin: sp.ReconnectMin, ReconnectMax: sp.ReconnectMax,
				Tracks: sdpTracks, Logger: n.log.With("stream", f.Stream)}, n.newStreamInput(fl, sp.Pacing, false)) // QUIC itself refuses replays
			r.close = pr.Close
			return pr.Start, nil
		}
		puller := pull.New(pull.Config{
			URL: sp.URL, Transport: sp.Transport, ReconnectMin: sp.ReconnectMin, ReconnectMax: sp.ReconnectMax,
			TLSConfig: tlsCfg, Logger: n.log.With("stream", f.Stream),
		}, n.newStreamInput(fl, sp.Pacing, strings.HasPrefix(strings.ToLower(sp.URL), "rtsps://")))
		r.close = puller.Close
		return puller.Start, nil
	})
}
