package gateway

import (
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
)

// rtpSourceSpec is the source spec of a route with an rtp:// source.
func rtpSourceSpec(r config.Route, hubs node.Hubs, backup *node.Backup) node.RTPSource {
	src := r.RTPSource
	sp := node.RTPSource{URL: r.Source, SDP: string(src.SDP), Interface: src.Interface, Hubs: hubs, Backup: backup}
	if src.FEC != nil {
		sp.FECColumns, sp.FECRows = src.FEC.Columns, src.FEC.Rows
	}
	if src.LiveLive != nil {
		sp.Leg2, sp.Skew = src.LiveLive.Leg2, src.LiveLive.Skew
	}
	return sp
}
