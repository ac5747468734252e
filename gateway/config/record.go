package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Record is routes.*.record: continuous recording of the route to fragmented MP4 files.
type Record struct {
	// Path is record.path, the directory under which the route's files go, in a directory
	// named after the route. Required.
	Path string
	// Segment is record.segment, the least duration of one file; a file ends at the first
	// keyframe after it. Default 1h.
	Segment time.Duration
	// Part is record.part, the least duration of a fragment, the unit written to the file at
	// once (a crash loses at most the part being collected). Default 1s.
	Part time.Duration
}

// record parses routes.*.record; regex reports a regex route, which has no single stream.
func (p *parser) record(path string, k, v *yaml.Node, regex bool) *Record {
	m := p.section(path, v)
	if m == nil {
		return nil
	}
	r := &Record{Segment: time.Hour, Part: time.Second}
	var segNode *yaml.Node
	p.fields(m, path, []field{
		{"path", func(_, v *yaml.Node) { p.str(&r.Path, path+".path", v) }},
		{"segment", func(_, v *yaml.Node) { segNode = v; p.duration(&r.Segment, path+".segment", v, false) }},
		{"part", func(_, v *yaml.Node) { p.duration(&r.Part, path+".part", v, false) }},
	})
	switch {
	case regex:
		p.errorf(k, "%s: recording needs one stream; a regex route has one per matched path", path)
	case r.Path == "":
		p.errorf(v, "%s.path: required, the directory the route's files go under", path)
	case r.Part > r.Segment:
		at := segNode
		if at == nil {
			at = v
		}
		p.errorf(at, "%s: segment (%s) must not be shorter than part (%s)", path, r.Segment, r.Part)
	}
	return r
}
