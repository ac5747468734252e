//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/gwtest"
)

// startGateway runs a gateway in the test process with a publisher route
// "load" and the demo route, and returns its RTSP base URL.
func startGateway(t *testing.T) string {
	t.Helper()
	return gwtest.Start(t, "rtsp:\n  listen: LISTEN\nroutes:\n  load:\n    source: publisher\n  demo:\n    source: demo\n").URL
}

func runForTest(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := run(ctx, cfg, gwtest.Writer{T: t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var b bytes.Buffer
	if err := rep.writeTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", b.String())
	return rep
}

func TestEndToEnd(t *testing.T) {
	base := startGateway(t)

	t.Run("udp readers of a published stream, then the floor", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = base + "load"
		cfg.Readers = 5
		cfg.Publish = true
		// 1 Mbit/s: the gateway's 512-packet reader queue then covers seconds of the stream, so a
		// test machine that stalls the process for a while does not turn into reported loss
		cfg.Stream.Bitrate = 1_000_000
		cfg.Warmup = 500 * time.Millisecond
		cfg.Duration = 2 * time.Second
		cfg.PID = os.Getpid() // the gateway runs in this process
		rep := runForTest(t, cfg)
		if rep.ReadersOK != 5 || rep.ReadersFailed != 0 {
			t.Fatalf("readers ok %d failed %d (%s)", rep.ReadersOK, rep.ReadersFailed, rep.FirstError)
		}
		if rep.Delivered.Packets == 0 || rep.Delivered.SourcePktPerSec == 0 {
			t.Fatalf("delivered %+v", rep.Delivered)
		}
		if rep.Loss.Lost != 0 || rep.Loss.Expected == 0 {
			t.Errorf("loss %+v", rep.Loss)
		}
		if rep.Latency == nil || rep.Latency.P50us <= 0 {
			t.Errorf("latency %+v", rep.Latency)
		}
		if rep.Gateway == nil || rep.Gateway.USPerPkt <= 0 || rep.Gateway.RSSBytes == 0 {
			t.Errorf("gateway %+v", rep.Gateway)
		}
		if rep.RcvBuf < cfg.RcvBuf {
			t.Errorf("effective rcvbuf %d below the %d asked", rep.RcvBuf, cfg.RcvBuf)
		}
		f := rep.Floor
		if f == nil {
			t.Fatalf("no floor: %v", rep.Notes)
		}
		if f.Delivered == 0 || f.Lost != 0 || f.Expected != f.Delivered || f.USPerPkt <= 0 {
			t.Errorf("floor %+v", f)
		}
		if rep.Ratio <= 0 {
			t.Errorf("ratio %v", rep.Ratio)
		}
		if p := rep.Publish; p == nil || p.Packets == 0 || p.SendFailures != 0 {
			t.Errorf("publish %+v", p)
		}
	})

	t.Run("tcp readers of the demo", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = base + "demo"
		cfg.Readers = 3
		cfg.Transport = "tcp"
		cfg.Warmup = 500 * time.Millisecond
		cfg.Duration = 1500 * time.Millisecond
		rep := runForTest(t, cfg)
		if rep.ReadersOK != 3 || rep.Delivered.Packets == 0 || rep.Disconnected != 0 {
			t.Fatalf("readers ok %d delivered %d disconnected %d (%s)", rep.ReadersOK, rep.Delivered.Packets, rep.Disconnected, rep.FirstError)
		}
		if rep.Floor != nil || rep.Gateway != nil {
			t.Errorf("floor %+v gateway %+v: neither applies", rep.Floor, rep.Gateway)
		}
	})

	t.Run("a reader that cannot set up is reported, not fatal", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = base + "nosuchroute"
		cfg.Readers = 2
		cfg.Duration = 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := run(ctx, cfg, nil)
		if err == nil || rep == nil || rep.ReadersFailed != 2 || !strings.Contains(rep.FirstError, "404") {
			t.Fatalf("err %v report %+v", err, rep)
		}
	})
}
