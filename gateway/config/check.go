package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// unsupported ends every message about a source meshgw cannot serve.
const unsupported = "use publisher, demo, rtsp://, rtsps:// or rtp://"

// checkSource returns what is wrong with a route source, or "".
func checkSource(s string) string {
	switch s {
	case SourcePublisher, SourceDemo, SchemeST2110:
		return ""
	case "":
		return "source must not be empty; " + unsupported
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Sprintf("source %q contains spaces or control characters", s)
	}
	i := strings.Index(s, "://")
	if i <= 0 {
		return fmt.Sprintf("source %q is not supported; %s", s, unsupported)
	}
	switch scheme := strings.ToLower(s[:i]); scheme {
	case "rtsp", "rtsps", SchemeRoQ:
	case SchemeRTP:
		return checkRTPSource(s)
	case SchemeST2110:
		return checkST2110Source(s)
	case SchemeMemif:
		_, msg := parseMemifURL(s)
		return msg
	default:
		return fmt.Sprintf("source scheme %q is not supported; %s", s[:i], unsupported)
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Sprintf("source %q is not a valid URL: %v", s, err)
	}
	if u.Hostname() == "" {
		return fmt.Sprintf("source %q has no host", s)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("source %q has invalid port %q (want 1-65535)", s, port)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fmt.Sprintf("source %q has an empty port; drop the \":\" or give a port", s)
	}
	return ""
}

// checkName returns what is wrong with a plain route name, or "". Names are
// the path part of rtsp://host:port/NAME, so they keep to characters that
// need no escaping in a URL and cannot climb out of the path; the set is
// mediamtx's, so its path names carry over.
func checkName(name string) string {
	switch {
	case name == "":
		return "route name must not be empty"
	case strings.HasPrefix(name, "/"):
		return fmt.Sprintf("route name must not start with \"/\"; write %q", strings.TrimLeft(name, "/"))
	case strings.HasSuffix(name, "/"):
		return "route name must not end with \"/\""
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune("_-.~:/", c)
		if !ok {
			return fmt.Sprintf("route name %q contains %q; use letters, digits and _ - . ~ : /", name, c)
		}
	}
	for _, seg := range strings.Split(name, "/") {
		switch seg {
		case "":
			return fmt.Sprintf("route name %q has an empty segment (\"//\")", name)
		case ".", "..":
			return fmt.Sprintf("route name %q has a %q segment", name, seg)
		}
	}
	return ""
}

// checkListen returns what is wrong with a listen address, or "".
func checkListen(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (write \":8554\" for all interfaces)", s)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' }) {
		return fmt.Sprintf("%q has spaces in its host", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("%q has invalid port %q (want 0-65535)", s, port)
	}
	return ""
}

// isMulticastPrefix reports whether the whole block p is multicast space.
func isMulticastPrefix(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() >= 4 && netip.MustParsePrefix("224.0.0.0/4").Contains(p.Addr())
	}
	return p.Bits() >= 8 && netip.MustParsePrefix("ff00::/8").Contains(p.Addr())
}

// checkMulticastRange parses a multicast CIDR block. Host bits are refused
// rather than masked because "239.255.42.7/24" usually means the author
// expected a single group, not 256.
func checkMulticastRange(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR block like 239.255.42.0/24", s)
	}
	if !isMulticastPrefix(p) {
		return netip.Prefix{}, fmt.Sprintf("%s is not inside a multicast block (224.0.0.0/4 or ff00::/8)", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Sprintf("%s has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, ""
}

// templateRefs lists the capture references ($1, $name, ${name}) in a regex
// route's source, read the way regexp.Expand reads them, so that a reference
// to a group that does not exist is caught at load instead of silently
// expanding to nothing.
func templateRefs(t string) []string {
	var refs []string
	for {
		i := strings.IndexByte(t, '$')
		if i < 0 || i+1 >= len(t) {
			return refs
		}
		t = t[i+1:]
		if t[0] == '$' {
			t = t[1:]
			continue
		}
		brace := t[0] == '{'
		s := t
		if brace {
			s = t[1:]
		}
		j := 0
		for j < len(s) && (s[j] == '_' || s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
			j++
		}
		if j == 0 || (brace && (j >= len(s) || s[j] != '}')) {
			continue // not a reference: regexp.Expand copies the "$" as is
		}
		refs = append(refs, s[:j])
		if brace {
			j++
		}
		t = s[j:]
	}
}

// checkDial returns what is wrong with an address to dial, or "".
func checkDial(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", s)
	}
	if host == "" || strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' }) {
		return fmt.Sprintf("%q needs a host name or address to dial", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%q has invalid port %q (want 1-65535)", s, port)
	}
	return ""
}
