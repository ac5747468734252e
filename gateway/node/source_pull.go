package node

import (
	"crypto/tls"
	"crypto/x509"
	"strings"

	"github.com/meshgw/meshgw/rtsp/pull"
)

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
		puller := pull.New(pull.Config{
			URL: sp.URL, Transport: sp.Transport, ReconnectMin: sp.ReconnectMin, ReconnectMax: sp.ReconnectMax,
			TLSConfig: tlsCfg, Logger: n.log.With("stream", f.Stream),
		}, n.newStreamInput(fl, sp.Pacing, strings.HasPrefix(strings.ToLower(sp.URL), "rtsps://")))
		r.close = puller.Close
		return puller.Start, nil
	})
}
