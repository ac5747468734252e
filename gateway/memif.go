package gateway

import (
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// memifConfig is the node's memif master from node.memif, nil without one. Interfaces with a
// route are consumers: the route's outputs (config.MemifOutput) put its tracks on them.
func memifConfig(cfg *config.Config) *node.MemifConfig {
	mc := cfg.Node.Memif
	if mc == nil {
		return nil
	}
	out := &node.MemifConfig{Socket: mc.Socket, Mode: mc.Mode}
	for _, it := range mc.Interfaces {
		out.Interfaces = append(out.Interfaces, node.MemifInterface{ID: it.ID, Secret: it.Secret, Consumer: it.Route != "",
			Frames: it.Form == config.MemifFrames})
	}
	return out
}

// memifSourceSpec is the source flow of a memif:// route: the interface and the stream's
// description from its sdp: file (one MPEG-TS track without one).
func memifSourceSpec(r config.Route, hubs node.Hubs) node.MemifSource {
	desc := r.MemifSource.SDP
	if desc == nil {
		desc, _ = sdp.MPEGTSSource()
	}
	return node.MemifSource{Interface: r.MemifSource.ID, SDP: string(desc), Hubs: hubs}
}
