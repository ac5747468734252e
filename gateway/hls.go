package gateway

import (
	"log/slog"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/access"
	"github.com/meshgw/meshgw/rtsp/hls"
)

// openHLS starts the HLS front door of an hls: section (nil without one). Its muxers read
// routes through the control like RTSP readers, under the RTSP front door's access policy,
// bans and password-check bound.
func openHLS(cfg *config.Config, ctl *Control, v *access.Verifier, bans *access.Bans, log *slog.Logger) (*hls.Server, error) {
	h := cfg.HLS
	if !h.Enabled() {
		return nil, nil
	}
	hc := hls.Config{
		Listen: h.Listen, Muxing: h.Muxing, Handler: ctl, Auth: authPolicy(cfg), Bans: bans, Verifier: v, Logger: log,
	}
	if h.TLS() {
		r, err := rtsp.NewCertReloader(h.Cert, h.Key, log)
		if err != nil {
			return nil, err
		}
		hc.TLSConfig = r.TLSConfig()
	}
	s, err := hls.New(hc)
	if err != nil {
		return nil, err
	}
	s.Start()
	return s, nil
}

// closeHLS stops the HLS front door, and with it every HLS reader, before the control goes.
func (g *Gateway) closeHLS() {
	if g.HLS != nil {
		if err := g.HLS.Close(); err != nil {
			g.log.Warn("hls close", "err", err)
		}
	}
}
