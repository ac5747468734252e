package config

import (
	"fmt"
	"strings"
)

// Error is one problem found in a config file. File and Line point at the
// offending key or value so an operator (or an editor parsing the output) can
// jump straight to it; Line is 0 only for whole-file problems such as an empty
// file or a missing routes section.
type Error struct {
	File   string // the name given to Parse or Load, used only for messages
	Line   int    // 1-based; 0 = the file as a whole
	Column int    // 1-based; 0 when unknown. Not printed, kept for tools.
	Msg    string
}

// Error formats the problem as "FILE:LINE: message", the shape compilers and
// linters use, so terminals and editors turn it into a link. Whole-file
// problems print as "FILE: message".
func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Errors is every problem found in one config file, in line order. Parse
// collects all of them instead of stopping at the first so that fixing a
// config is one edit-check cycle, not one per mistake.
type Errors struct {
	List []*Error
}

// Error prints one problem per line.
func (e *Errors) Error() string {
	var b strings.Builder
	for i, err := range e.List {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap exposes the individual problems so errors.As(err, &*Error) finds the
// first one.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, err := range e.List {
		out[i] = err
	}
	return out
}
