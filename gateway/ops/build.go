package ops

import (
	"fmt"
	"runtime/debug"
)

// BuildInfo is what the Go toolchain recorded about the running binary (runtime/debug).
type BuildInfo struct {
	// Version is the main module's version: a tag, or a pseudo-version derived from the
	// commit when built with `go build` in a checkout (Go 1.24+), or "(devel)" without VCS
	// information.
	Version string
	// Revision is the VCS commit, "" when the build recorded none (-buildvcs=false, or a
	// source tree without .git such as a container build context).
	Revision string
	// Time is the commit time (RFC 3339), Modified whether the tree had uncommitted changes.
	Time     string
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Build reads the running binary's build information.
func Build() BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return BuildInfo{Version: "unknown"}
	}
	b := BuildInfo{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is one line for `meshgw version` and logs: the version, then the revision, its time
// and whether the tree was modified, or why there is no revision.
func (b BuildInfo) String() string {
	rev := "no VCS revision recorded (built with -buildvcs=false or outside a git checkout)"
	if b.Revision != "" {
		rev = "revision " + b.Revision
		if b.Time != "" {
			rev += " of " + b.Time
		}
		if b.Modified {
			rev += ", modified"
		}
	}
	return fmt.Sprintf("meshgw %s (%s; %s)", b.Version, rev, b.GoVersion)
}
