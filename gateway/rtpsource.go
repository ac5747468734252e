package gateway

import (
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
)

// rtpSourceFlow fills the source flow of a route with an rtp:// source.
func rtpSourceFlow(f *node.Flow, r config.Route) {
	src := r.RTPSource
	f.Kind = node.SourceRTP
	f.URL = r.Source
	f.SDP = string(src.SDP)
	f.RTPInterface = src.Interface
	if src.FEC != nil {
		f.FECColumns, f.FECRows = src.FEC.Columns, src.FEC.Rows
	}
	if src.LiveLive != nil {
		f.Leg2, f.Skew = src.LiveLive.Leg2, src.LiveLive.Skew
	}
}
