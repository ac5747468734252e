package node

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/meshgw/meshgw/rtsp/pull"
)

// pullSource runs a SourcePull flow: the RTSP pull client, feeding the stream's input.
type pullSource struct {
	puller *pull.Puller
}

func (r *pullSource) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		f := fl.spec
		var tlsCfg *tls.Config
		if len(f.TLSCA) > 0 {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(f.TLSCA) // Validate checked it holds a certificate
			tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		r.puller = pull.New(pull.Config{
			URL: f.URL, Transport: f.Transport, ReconnectMin: f.ReconnectMin, ReconnectMax: f.ReconnectMax,
			TLSConfig: tlsCfg, Logger: n.log.With("stream", f.Stream),
		}, n.newStreamInput(fl))
		return r.puller.Start, nil
	})
}

func (r *pullSource) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

func (r *pullSource) stats(_ *Local, fl *flow, st *FlowStats) { fl.counts(st) }

func (r *pullSource) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), r.puller.Close)
}
