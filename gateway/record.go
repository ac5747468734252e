package gateway

import (
	"log/slog"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/rtsp/record"
)

// startRecorders starts a recorder for every route with record: (regex routes cannot have one).
// A recorder is a reader of its route that never leaves, on the control's local node, so its
// route's source runs from startup.
func startRecorders(cfg *config.Config, ctl *Control, log *slog.Logger) ([]*record.Recorder, error) {
	var out []*record.Recorder
	for _, r := range cfg.Routes {
		if r.Record == nil || r.Regexp != nil {
			continue
		}
		dir, err := record.RouteDir(r.Record.Path, r.Name)
		if err != nil {
			for _, rec := range out {
				rec.Close()
			}
			return nil, err
		}
		out = append(out, record.Start(record.Config{Route: r.Name, Dir: dir, Segment: r.Record.Segment,
			Part: r.Record.Part, Handler: ctl, Logger: log}))
	}
	return out, nil
}

// closeRecorders stops the recorders, each finishing its file, before the control goes.
func (g *Gateway) closeRecorders() {
	for _, r := range g.Recorders {
		r.Close()
	}
}
