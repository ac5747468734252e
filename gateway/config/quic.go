package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// SchemeRoQ is the scheme of a source pulled over RTP over QUIC from another meshgw's quic:
// listener: roq://HOST:PORT/ROUTE.
const SchemeRoQ = "roq"

// IsRoQ reports whether the route's source is pulled over RTP over QUIC.
func (r Route) IsRoQ() bool { return strings.HasPrefix(strings.ToLower(r.Source), SchemeRoQ+"://") }

// QUIC is the quic: section, the RTP-over-QUIC (RoQ) listener for readers. It is off unless
// the section is present; the control's local node serves its readers.
type QUIC struct {
	// Listen is quic.listen, the UDP host:port of the QUIC listener. Default ":4443".
	Listen string
	// Cert and Key are quic.cert and quic.key, PEM files of the server certificate (chain)
	// and its private key. Both are required: QUIC is always TLS.
	Cert, Key string
	// Queue is quic.queue, packets queued per RoQ reader; a reader whose queue passes half of
	// it loses whole frames until the next keyframe. Default 512.
	Queue int
}

// Enabled reports whether the section was given.
func (q QUIC) Enabled() bool { return q.Listen != "" }

func (p *parser) quic(q *QUIC, v *yaml.Node) {
	const path = "quic"
	m := p.section(path, v)
	if m == nil {
		return
	}
	q.Listen = ":4443"
	q.Queue = 512
	p.fields(m, path, []field{
		{"listen", func(_, v *yaml.Node) { p.listen(&q.Listen, "quic.listen", v, `":4443"`, false) }},
		{"cert", func(_, v *yaml.Node) { p.str(&q.Cert, "quic.cert", v) }},
		{"key", func(_, v *yaml.Node) { p.str(&q.Key, "quic.key", v) }},
		{"queue", func(_, v *yaml.Node) { p.integer(&q.Queue, "quic.queue", v, 16, 1<<20) }},
	})
	if q.Cert == "" || q.Key == "" {
		p.errorf(v, "quic: cert and key are required (PEM files of the server certificate and its key; QUIC is always TLS)")
	}
}
