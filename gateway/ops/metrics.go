package ops

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (s *Server) mountMetrics() {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(s.cfg.Source))
	s.handle("GET /metrics", metricsRole, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: promLog{s.log}}))
}
