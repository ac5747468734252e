package config

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Backup modes accepted in a route's backup_mode.
const (
	// BackupAuto merges the two sources when their packets prove to be one
	// RTP stream (same SSRC, same sequence numbers and timestamps) and
	// switches between them otherwise.
	BackupAuto = "auto"
	// BackupMerge merges both sources as SMPTE 2022-7 legs: hitless, but only
	// for two copies of one RTP stream.
	BackupMerge = "merge"
	// BackupSwitch forwards the primary and switches to the backup at its
	// next keyframe when the primary stalls, and back when it recovers.
	BackupSwitch = "switch"
)

// DefaultBackupStall is a route's backup_stall when the key is absent.
const DefaultBackupStall = time.Second

// backupKeys holds the backup keys of one route as the parser met them, so
// that the checks that involve other keys can point at the right line.
type backupKeys struct {
	src, stall, mode *yaml.Node
}

// backupFields are the route keys of a backup source (routes.*.backup*).
func (p *parser) backupFields(r *Route, path string, k *backupKeys) []field {
	return []field{
		{"backup", func(_, v *yaml.Node) {
			if p.str(&r.Backup, path+".backup", v) {
				k.src = v
			}
		}},
		{"backup_stall", func(_, v *yaml.Node) {
			if p.duration(&r.BackupStall, path+".backup_stall", v, false) {
				k.stall = v
			}
		}},
		{"backup_mode", func(_, v *yaml.Node) {
			if p.enum(&r.BackupMode, path+".backup_mode", v, BackupAuto, BackupMerge, BackupSwitch) {
				k.mode = v
			}
		}},
	}
}

// checkBackup validates a route's backup keys once all its keys are read.
//
// A publisher route takes no backup: its stream comes and goes with the
// client that records to it, which the control (not a node's selector)
// handles, so a backup there would have nothing to switch from.
func (p *parser) checkBackup(r Route, path string, k backupKeys) {
	if k.src == nil {
		switch {
		case k.stall != nil:
			p.errorf(k.stall, "%s: backup_stall needs a backup source (add backup: or remove backup_stall)", path)
		case k.mode != nil:
			p.errorf(k.mode, "%s: backup_mode needs a backup source (add backup: or remove backup_mode)", path)
		}
		return
	}
	switch {
	case r.Source == SourcePublisher:
		p.errorf(k.src, "%s: backup is not supported with source: publisher; a backup backs up a source the node pulls (rtsp://, rtsps:// or demo)", path)
	case r.Backup == SourcePublisher:
		p.errorf(k.src, "%s: backup: publisher is not supported; use demo, rtsp:// or rtsps://", path)
	default:
		if msg := checkTemplate(r, "backup", r.Backup); msg != "" {
			p.errorf(k.src, "%s: %s", path, msg)
		} else if !isBackupKind(r.Backup) {
			// a source kind the node cannot yet put behind a selector (see node.newIngest)
			p.errorf(k.src, "%s: backup %q is not supported; a backup is demo, rtsp:// or rtsps://", path, r.Backup)
		} else if r.Backup == r.Source && r.BackupMode == BackupSwitch {
			p.errorf(k.src, "%s: backup is the same source as source:; switching between one source and itself protects nothing (use backup_mode: merge for two copies of one stream, or another source)", path)
		}
	}
}

// isBackupKind reports whether a valid source can be a backup.
func isBackupKind(s string) bool {
	l := strings.ToLower(s)
	return s == SourceDemo || strings.HasPrefix(l, "rtsp://") || strings.HasPrefix(l, "rtsps://")
}

// backupIsPull reports whether a route's backup is pulled over RTSP, so
// source_transport applies to it (it applies to both of a route's sources).
func backupIsPull(r Route) bool { return r.Backup != "" && r.Backup != SourceDemo }
