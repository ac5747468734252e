package node

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/meshgw/meshgw/rtsp/pull"
)

// pullSource runs a SourcePull flow: the RTSP pull client, feeding the stream's input.
type pullSource struct {
	clientSource
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
		puller := pull.New(pull.Config{
			URL: f.URL, Transport: f.Transport, ReconnectMin: f.ReconnectMin, ReconnectMax: f.ReconnectMax,
			TLSConfig: tlsCfg, Logger: n.log.With("stream", f.Stream),
		}, n.newStreamInput(fl))
		r.close = puller.Close
		return puller.Start, nil
	})
}
