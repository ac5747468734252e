package access

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Pattern matches route paths: an exact name ("cam1"), a glob ("cam/*", "lobby-?"; path.Match
// rules, so "*" does not cross "/"), the single "*" for every route, or a regular expression
// written as in route keys: "~^cam/[0-9]+$" (RE2, not anchored for you).
type Pattern struct {
	text  string
	exact string
	glob  bool
	all   bool
	re    *regexp.Regexp
}

// ParsePattern compiles one route pattern.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{text: s}
	switch {
	case s == "":
		return p, fmt.Errorf("a route pattern must not be empty")
	case s == "*":
		p.all = true
	case strings.HasPrefix(s, "~"):
		if s == "~" {
			return p, fmt.Errorf("a regex pattern needs an expression after the \"~\"")
		}
		re, err := regexp.Compile(s[1:])
		if err != nil {
			return p, fmt.Errorf("invalid regular expression %q: %v", s[1:], err)
		}
		p.re = re
	case strings.ContainsAny(s, "*?[\\"):
		if _, err := path.Match(s, ""); err != nil {
			return p, fmt.Errorf("invalid glob %q: %v", s, err)
		}
		p.glob = true
	default:
		p.exact = strings.Trim(s, "/")
	}
	return p, nil
}

// Match reports whether the route path (no leading slash) matches.
func (p Pattern) Match(route string) bool {
	switch {
	case p.all:
		return true
	case p.re != nil:
		return p.re.MatchString(route)
	case p.glob:
		ok, _ := path.Match(p.text, route)
		return ok
	}
	return p.exact == route
}

// String is the pattern as written.
func (p Pattern) String() string { return p.text }

// Patterns is a list of route patterns; it matches when any member does.
type Patterns []Pattern

// Match reports whether any pattern matches route.
func (ps Patterns) Match(route string) bool {
	for _, p := range ps {
		if p.Match(route) {
			return true
		}
	}
	return false
}
