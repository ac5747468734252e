package config

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// field is one known key of a mapping and what to do with its value.
type field struct {
	name string
	set  func(key, val *yaml.Node)
}

// entry is one key/value pair of a mapping after merge keys are applied.
type entry struct{ key, val *yaml.Node }

// fields applies the known keys of mapping m and reports the unknown ones
// at their own line, with a suggestion when one is close.
func (p *parser) fields(m *yaml.Node, path string, known []field) {
	for _, e := range p.entries(m, path) {
		var f *field
		for i := range known {
			if known[i].name == e.key.Value {
				f = &known[i]
				break
			}
		}
		if f == nil {
			p.errorf(e.key, "%sunknown key %q%s", prefix(path), e.key.Value, hint(path, e.key.Value, known))
			continue
		}
		f.set(e.key, e.val)
	}
}

// prefix renders path as the start of a message ("" for the top level).
func prefix(path string) string {
	if path == "" {
		return ""
	}
	return path + ": "
}

// entries returns m's key/value pairs in file order, reporting duplicate and
// non-string keys, with YAML merge keys ("<<: *anchor") expanded: explicit
// keys win over merged ones and earlier merges win over later ones, as the
// YAML merge-key spec says. Anchors are the only way to share settings
// between routes, so they are worth supporting.
func (p *parser) entries(m *yaml.Node, path string) []entry {
	var out []entry
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%skeys must be plain strings, got %s", prefix(path), describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			p.errorf(k, "%sduplicate key %q (first defined at line %d)", prefix(path), k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k, v})
	}
	// visited stops merge cycles and repeated merges of one anchor, which
	// would otherwise let a small file expand exponentially.
	visited := map[*yaml.Node]bool{m: true}
	for _, v := range merges {
		out = p.merge(out, v, path, seen, visited)
	}
	return out
}

// merge appends the pairs of a merge key's value v that are not yet in seen.
func (p *parser) merge(out []entry, v *yaml.Node, path string, seen map[string]*yaml.Node, visited map[*yaml.Node]bool) []entry {
	r := resolve(v)
	switch {
	case r != nil && r.Kind == yaml.MappingNode:
		if visited[r] {
			return out
		}
		visited[r] = true
		var nested []*yaml.Node
		for i := 0; i+1 < len(r.Content); i += 2 {
			k, val := r.Content[i], r.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				continue // reported where the anchored mapping itself is used
			}
			if k.Tag == "!!merge" {
				nested = append(nested, val)
				continue
			}
			if _, ok := seen[k.Value]; ok {
				continue
			}
			seen[k.Value] = k
			out = append(out, entry{k, val})
		}
		for _, n := range nested {
			out = p.merge(out, n, path, seen, visited)
		}
	case r != nil && r.Kind == yaml.SequenceNode && v.Kind != yaml.AliasNode:
		for _, item := range r.Content {
			if ri := resolve(item); ri == nil || ri.Kind != yaml.MappingNode {
				p.errorf(item, "%sa merge key (<<) list may hold only mappings, got %s", prefix(path), describe(ri))
				continue
			}
			out = p.merge(out, item, path, seen, visited)
		}
	default:
		p.errorf(v, "%sthe value of a merge key (<<) must be a mapping or a list of mappings, got %s", prefix(path), describe(r))
	}
	return out
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// isNull reports whether n is absent or an explicit null ("key:" with no
// value, "~" or "null"), which every key treats as "use the default".
func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "…"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!int":
		return "integer " + v
	case "!!float":
		return "number " + v
	case "!!bool":
		return "boolean " + v
	case "!!str":
		return fmt.Sprintf("string %q", v)
	default:
		return fmt.Sprintf("%s %q", n.ShortTag(), v)
	}
}

// section resolves a nested mapping such as rtsp: (nil when null or wrong).
func (p *parser) section(path string, v *yaml.Node) *yaml.Node {
	m := resolve(v)
	if isNull(m) {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		p.errorf(v, "%s: expected a mapping, got %s", path, describe(m))
		return nil
	}
	return m
}

// scalar resolves v and checks it is a scalar with one of tags. It returns
// nil without a message for null (the key keeps its default).
func (p *parser) scalar(path string, v *yaml.Node, want string, tags ...string) *yaml.Node {
	s := resolve(v)
	if isNull(s) {
		return nil
	}
	if s.Kind == yaml.ScalarNode {
		for _, t := range tags {
			if s.ShortTag() == t {
				return s
			}
		}
	}
	p.errorf(v, "%s: expected %s, got %s", path, want, describe(s))
	return nil
}

// str sets *dst from a string value; it reports whether it did.
func (p *parser) str(dst *string, path string, v *yaml.Node) bool {
	return p.strWant(dst, path, v, "a string")
}

// strWant is str with a custom description of what was expected, for keys
// where a bare number is a likely slip (listen: 8554).
func (p *parser) strWant(dst *string, path string, v *yaml.Node, want string) bool {
	s := p.scalar(path, v, want, "!!str")
	if s == nil {
		return false
	}
	*dst = s.Value
	return true
}

// enum sets *dst from a string value that must be one of allowed.
func (p *parser) enum(dst *string, path string, v *yaml.Node, allowed ...string) bool {
	var s string
	if !p.str(&s, path, v) {
		return false
	}
	for _, a := range allowed {
		if s == a {
			*dst = s
			return true
		}
	}
	p.errorf(v, "%s: %q is not one of %s", path, s, strings.Join(allowed, ", "))
	return false
}

// integer sets *dst from an integer value within [lo, hi].
func (p *parser) integer(dst *int, path string, v *yaml.Node, lo, hi int) bool {
	s := p.scalar(path, v, "an integer", "!!int")
	if s == nil {
		return false
	}
	var n int64
	if err := s.Decode(&n); err != nil || n < int64(lo) || n > int64(hi) {
		p.errorf(v, "%s: %s is out of range (%d-%d)", path, s.Value, lo, hi)
		return false
	}
	*dst = int(n)
	return true
}

// number sets *dst from a decimal number that is 0 (off) or within lo-hi.
func (p *parser) number(dst *float64, path string, v *yaml.Node, lo, hi float64) bool {
	s := p.scalar(path, v, "a number", "!!int", "!!float")
	if s == nil {
		return false
	}
	var f float64
	if err := s.Decode(&f); err != nil || (f != 0 && (f < lo || f > hi)) {
		p.errorf(v, "%s: %s is out of range (0 for off, or %g-%g)", path, s.Value, lo, hi)
		return false
	}
	*dst = f
	return true
}

// port sets *dst from an RTP port: even, because RTP/AVP puts RTP on the even
// port and RTCP on the odd one above it, and at most 65534 so that pair fits.
func (p *parser) port(dst *int, path string, v *yaml.Node, lo int) bool {
	var n int
	if !p.integer(&n, path, v, lo, 65534) {
		return false
	}
	if n%2 != 0 {
		p.errorf(v, "%s: %d is odd; RTP needs an even port (RTCP takes the next odd one)", path, n)
		return false
	}
	*dst = n
	return true
}

// boolean sets *dst from true/false, also accepting the YAML 1.1 yes/no/on/off
// that mediamtx configs are full of (yaml.v3 reads those as strings).
func (p *parser) boolean(dst *bool, path string, v *yaml.Node) bool {
	s := p.scalar(path, v, "true or false", "!!bool", "!!str")
	if s == nil {
		return false
	}
	switch strings.ToLower(s.Value) {
	case "true", "yes", "on":
		*dst = true
	case "false", "no", "off":
		*dst = false
	default:
		p.errorf(v, "%s: expected true or false, got %s", path, describe(s))
		return false
	}
	return true
}

// duration sets *dst from a Go duration string such as "10s" or "1m30s".
// A bare number is refused rather than guessed as seconds or nanoseconds.
func (p *parser) duration(dst *time.Duration, path string, v *yaml.Node, allowZero bool) bool {
	s := resolve(v)
	if isNull(s) {
		return false
	}
	if s.Kind == yaml.ScalarNode && (s.ShortTag() == "!!int" || s.ShortTag() == "!!float") {
		p.errorf(v, "%s: expected a duration with a unit like \"10s\", got %s", path, describe(s))
		return false
	}
	var str string
	if !p.str(&str, path, v) {
		return false
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		p.errorf(v, "%s: %q is not a duration; write it like \"10s\", \"1m30s\" or \"500ms\"", path, str)
		return false
	}
	if d < 0 || (d == 0 && !allowZero) {
		if allowZero {
			p.errorf(v, "%s: must not be negative, got %s", path, str)
		} else {
			p.errorf(v, "%s: must be greater than 0, got %s", path, str)
		}
		return false
	}
	*dst = d
	return true
}

// hint suggests what an unknown key was meant to be: the meshgw name of a
// mediamtx key, or a known key that differs only in case, separators or a
// typo or two.
func hint(path, key string, known []field) string {
	if m := mediamtxKey(path, key); m != "" {
		return fmt.Sprintf("; meshgw calls this %s", m)
	}
	best, bestDist := "", 3
	for _, f := range known {
		if normalize(f.name) == normalize(key) {
			return fmt.Sprintf("; did you mean %q?", f.name)
		}
		if d := levenshtein(f.name, key); d < bestDist && d < len(f.name) {
			best, bestDist = f.name, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}

// mediamtxKey maps mediamtx setting names to where meshgw keeps them, so a
// pasted mediamtx config gets pointed at the right place.
func mediamtxKey(path, key string) string {
	if path == "" {
		switch key {
		case "paths":
			return `"routes"`
		case "pathDefaults":
			return `nothing: meshgw has no route defaults; share settings with YAML anchors (<<: *name)`
		case "rtspAddress":
			return `"listen" under rtsp:`
		case "rtpAddress":
			return `"rtp_port" under rtsp:`
		case "rtcpAddress":
			return `"rtcp_port" under rtsp:`
		case "multicastIPRange":
			return `"range" under rtsp: multicast:`
		case "multicastRTPPort":
			return `"port" under rtsp: multicast:`
		case "readTimeout", "writeTimeout":
			return fmt.Sprintf("%q under rtsp:", toSnake(key))
		case "writeQueueSize":
			return `"udp_queue" and "tcp_queue" under rtsp:`
		case "protocols", "rtspTransports":
			return `"protocols" under rtsp:`
		}
		return ""
	}
	if strings.HasPrefix(path, "routes.") {
		switch key {
		case "sourceOnDemand":
			return `"on_demand"`
		case "sourceOnDemandStartTimeout":
			return `"on_demand_start_timeout"`
		case "sourceOnDemandCloseAfter":
			return `"on_demand_close_after"`
		case "sourceProtocol", "rtspTransport":
			return `"source_transport"`
		}
	}
	return ""
}

// toSnake turns camelCase into snake_case.
func toSnake(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			b.WriteByte('_')
			c += 'a' - 'A'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// normalize folds case and drops separators so logLevel, log-level and
// LOG_LEVEL all compare equal to log_level.
func normalize(s string) string {
	s = strings.ToLower(s)
	return strings.NewReplacer("_", "", "-", "").Replace(s)
}

// levenshtein is the edit distance between a and b, capped in cost by the
// short key names it is used on.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// leadingDigits returns the decimal digits s starts with.
func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
