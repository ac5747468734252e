// Package ops is meshgw's operations listener: one HTTP(S) server carrying the health probes
// (/healthz, /readyz), Prometheus metrics (/metrics), pprof (behind api.pprof) and the REST API
// mounted by other files of this package. It reads the running gateway only through Source, a
// read model of plain data (Snapshot), so it never touches a lock of the control or anything on
// the packet path; the gateway package implements Source.
//
// Everything but the probes is behind one middleware (auth.go): users of auth: with an api:
// role (Basic over HTTPS or from loopback, or a bearer token) or a client certificate verified
// against api.client_ca. A listener with no way to authenticate is allowed only on loopback
// (config.checkAPI), where it serves everyone.
package ops
