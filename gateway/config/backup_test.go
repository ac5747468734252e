package config

import (
	"strings"
	"testing"
	"time"
)

func TestBackupKeys(t *testing.T) {
	c := mustParse(t, `routes:
  cam:
    source: rtsp://10.0.0.5/a
    backup: rtsp://10.0.0.6/a
  cam2:
    source: demo
    backup: demo
    backup_stall: 300ms
    backup_mode: merge
  plain:
    source: rtsp://10.0.0.5/b
  "~^re/([0-9]+)$":
    source: rtsp://10.0.0.5/$1
    backup: rtsps://10.0.0.6:322/${1}x
`)
	cam, _ := c.Match("cam")
	if cam.Backup != "rtsp://10.0.0.6/a" || cam.BackupStall != time.Second || cam.BackupMode != BackupAuto {
		t.Errorf("cam: backup %q stall %v mode %q, want the URL, 1s, auto", cam.Backup, cam.BackupStall, cam.BackupMode)
	}
	if _, err := Parse("t.yaml", []byte("routes:\n  d:\n    source: demo\n    backup: rtsp://h/b\n    source_transport: tcp\n")); err != nil {
		t.Errorf("source_transport with an rtsp:// backup of a demo source: %v", err)
	}
	cam2, _ := c.Match("cam2")
	if cam2.Backup != SourceDemo || cam2.BackupStall != 300*time.Millisecond || cam2.BackupMode != BackupMerge {
		t.Errorf("cam2: backup %q stall %v mode %q", cam2.Backup, cam2.BackupStall, cam2.BackupMode)
	}
	plain, _ := c.Match("plain")
	if plain.Backup != "" || plain.BackupStall != DefaultBackupStall || plain.BackupMode != BackupAuto {
		t.Errorf("plain: backup %q stall %v mode %q, want none with the defaults", plain.Backup, plain.BackupStall, plain.BackupMode)
	}
	re, ok := c.Match("re/7")
	if !ok || re.Source != "rtsp://10.0.0.5/7" || re.Backup != "rtsps://10.0.0.6:322/7x" {
		t.Errorf("re/7: ok %v source %q backup %q", ok, re.Source, re.Backup)
	}
}

func TestBackupErrors(t *testing.T) {
	tests := []struct {
		name, route string
		want        string
	}{
		{"publisher with backup", "source: publisher\n    backup: demo",
			`t.yaml:4: routes.r: backup is not supported with source: publisher; a backup backs up a source the node pulls (rtsp://, rtsps:// or demo)`},
		{"default publisher with backup", "backup: demo",
			`t.yaml:3: routes.r: backup is not supported with source: publisher; a backup backs up a source the node pulls (rtsp://, rtsps:// or demo)`},
		{"backup publisher", "source: demo\n    backup: publisher",
			`t.yaml:4: routes.r: backup: publisher is not supported; use demo, rtsp:// or rtsps://`},
		{"bad scheme", "source: demo\n    backup: http://x/y",
			`t.yaml:4: routes.r: source scheme "http" is not supported; use publisher, demo, rtsp://, rtsps:// or rtp://`},
		{"no host", "source: demo\n    backup: rtsp:///y",
			`t.yaml:4: routes.r: source "rtsp:///y" has no host`},
		{"stall without backup", "source: demo\n    backup_stall: 2s",
			`t.yaml:4: routes.r: backup_stall needs a backup source (add backup: or remove backup_stall)`},
		{"mode without backup", "source: demo\n    backup_mode: merge",
			`t.yaml:4: routes.r: backup_mode needs a backup source (add backup: or remove backup_mode)`},
		{"zero stall", "source: demo\n    backup: demo\n    backup_stall: 0s",
			`t.yaml:5: routes.r.backup_stall: must be greater than 0, got 0s`},
		{"stall without unit", "source: demo\n    backup: demo\n    backup_stall: 2",
			`t.yaml:5: routes.r.backup_stall: expected a duration with a unit like "10s", got integer 2`},
		{"bad mode", "source: demo\n    backup: demo\n    backup_mode: hot",
			`t.yaml:5: routes.r.backup_mode: "hot" is not one of auto, merge, switch`},
		{"switch to itself", "source: rtsp://a/b\n    backup: rtsp://a/b\n    backup_mode: switch",
			`t.yaml:4: routes.r: backup is the same source as source:; switching between one source and itself protects nothing (use backup_mode: merge for two copies of one stream, or another source)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte("routes:\n  r:\n    "+tc.route+"\n"))
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if got := strings.TrimSpace(err.Error()); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	// a regex route's backup references groups of its own pattern
	_, err := Parse("t.yaml", []byte("routes:\n  \"~^c/(\\\\d+)$\":\n    source: rtsp://a/$1\n    backup: rtsp://b/$2\n"))
	want := `t.yaml:4: routes.~^c/(\d+)$: backup refers to $2 but the pattern has 1 capture group(s)`
	if err == nil || err.Error() != want {
		t.Errorf("regex backup: got %v\nwant %s", err, want)
	}
}

// TestIsBackupKind: sources other routes may take (rtp://, once it exists) are refused as backups
// until the node can put them behind its selector.
func TestIsBackupKind(t *testing.T) {
	for s, want := range map[string]bool{
		"demo": true, "rtsp://a/b": true, "RTSPS://a/b": true, "publisher": false, "rtp://239.0.0.1:5000": false, "st2110://x.sdp": false,
	} {
		if got := isBackupKind(s); got != want {
			t.Errorf("isBackupKind(%q) = %v, want %v", s, got, want)
		}
	}
}
