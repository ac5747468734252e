//go:build linux

package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFlags(t *testing.T) {
	var out, errs bytes.Buffer
	for _, args := range [][]string{
		{},                    // -url missing
		{"-url", "http://x/"}, // not rtsp
		{"-url", "rtsp://h/p", "-transport", "quic"},
		{"-url", "rtsp://h/p", "-publish", "-fps", "0"},
		{"-url", "rtsp://h/p", "extra"},
	} {
		errs.Reset()
		if code := realMain(args, &out, &errs); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errs.String())
		}
	}
	cfg, asJSON, err := parseFlags([]string{"-url", "rtsp://h/p", "-readers", "1000", "-rcvbuf", "0", "-json", "-publish", "-publishers", "2"}, &errs)
	if err != nil || !asJSON || cfg.Readers != 1000 || cfg.RcvBuf != 0 || !cfg.Publish || cfg.Publishers != 2 || !cfg.Floor {
		t.Fatalf("cfg %+v json %v err %v", cfg, asJSON, err)
	}
	errs.Reset()
	if code := realMain([]string{"-h"}, &out, &errs); code != 0 || !strings.Contains(errs.String(), "-rx-workers") {
		t.Fatalf("-h: exit %d, usage %q", code, errs.String())
	}
}
