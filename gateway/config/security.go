package config

import (
	"gopkg.in/yaml.v3"
)

// SRTP policies accepted in a route's srtp: key.
const (
	SRTPOff      = "off"
	SRTPOptional = "optional"
	SRTPRequired = "required"
)

// RTSPS is the rtsps: section, the TLS listener. It is off unless the
// section is present.
type RTSPS struct {
	// Listen is rtsps.listen, the TCP host:port of the RTSPS server.
	// Default ":8322", the port mediamtx uses.
	Listen string
	// Cert and Key are rtsps.cert and rtsps.key, PEM files of the server
	// certificate (chain) and its private key. Both are required. They are
	// re-read when either file changes, so a renewed certificate is served
	// without a restart.
	Cert, Key string
}

// Enabled reports whether the section was given.
func (r RTSPS) Enabled() bool { return r.Listen != "" }

func (p *parser) rtsps(r *RTSPS, v *yaml.Node) {
	const path = "rtsps"
	m := p.section(path, v)
	if m == nil {
		return
	}
	r.Listen = ":8322"
	p.fields(m, path, []field{
		{"listen", func(_, v *yaml.Node) { p.listen(&r.Listen, "rtsps.listen", v, `":8322"`, false) }},
		{"cert", func(_, v *yaml.Node) { p.str(&r.Cert, "rtsps.cert", v) }},
		{"key", func(_, v *yaml.Node) { p.str(&r.Key, "rtsps.key", v) }},
	})
	if r.Cert == "" || r.Key == "" {
		p.errorf(v, "rtsps: cert and key are required (PEM files of the server certificate and its key)")
	}
}

// routeSRTP parses routes.*.srtp.
func (p *parser) routeSRTP(r *Route, path string, v *yaml.Node) {
	// YAML 1.1 readers turn a bare off into false; accept that spelling too
	if s := resolve(v); s != nil && s.Kind == yaml.ScalarNode && s.ShortTag() == "!!bool" {
		if s.Value == "false" || s.Value == "off" || s.Value == "no" {
			r.SRTP = SRTPOff
			return
		}
	}
	p.enum(&r.SRTP, path+".srtp", v, SRTPOff, SRTPOptional, SRTPRequired)
}
