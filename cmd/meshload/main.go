//go:build linux

// Command meshload loads a running meshgw with many RTSP readers from one
// process and measures, in one run, the gateway's CPU per delivered packet
// and the same figure for a raw sendmmsg relay (the "floor") delivering the
// same packets to the same sockets, so the ratio gateway/floor is one
// command away.
//
//	meshload -url rtsp://127.0.0.1:8554/demo -readers 100 -pid $(pidof meshgw)
//	meshload -url rtsp://127.0.0.1:8554/load -publish -readers 100 -pid ...
//	meshload -url rtsps://127.0.0.1:8322/load -tls-ca cert.pem -srtp -publish ...
//	meshload -url rtsp://127.0.0.1:8554/load -routes 10 -publish -readers 100 -pid ...
//	meshload -url rtsp://127.0.0.1:8554/pull -routes 100 -publish-url rtsp://origin/clip -wait-routes 30s ...
//
// Three subcommands serve scripts/soak.sh, the churn soak: "meshload
// sample" writes a CSV of a process's RSS, goroutines, fds and UDP sockets
// every few seconds, "meshload guess" makes failed logins from an address of
// its own, and "meshload verdict" fits the samples' slopes and says whether
// anything leaked.
//
// With -routes N the readers are dealt over N routes (the URL path with
// suffix 0..N-1), each published by its own publisher (-publish) or pulled by
// the gateway from an origin meshload publishes one stream to (-publish-url);
// delivery and loss are reported per route and track, each SSRC a sequence
// line of its own.
//
// Over rtsps:// a route with SRTP describes its tracks with keys (SDES
// a=crypto, MIKEY a=key-mgmt); readers then SETUP plain RTP/AVP as FFmpeg
// does and the gateway encrypts. The RTP header stays clear, so delivery and
// loss are counted as usual, but the payload carrying the send time is
// encrypted: latency is reported as unavailable for such readers.
//
// Exit status: 0 the run completed; 1 it failed; 2 bad flags; 3 it ran but
// some readers did not set up or nothing was delivered.
//
// meshload runs on Linux only: it receives with epoll and recvmmsg, relays
// with sendmmsg, and measures with /proc and RUSAGE_THREAD.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain is main without the process around it, so tests can drive it.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if cmd, ok := soakCommands[args[0]]; ok {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			err := cmd(ctx, args[1:], stdout, stderr)
			switch {
			case errors.Is(err, flag.ErrHelp):
				return 0
			case err != nil:
				fmt.Fprintf(stderr, "meshload: %v\n", err)
				return 1
			}
			return 0
		}
	}
	cfg, asJSON, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshload: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "meshload: %v\n", err)
		return 1
	}
	if asJSON {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshload: %v\n", err)
		return 1
	}
	if rep.ReadersFailed > 0 || (cfg.Readers > 0 && rep.Delivered.Packets == 0) {
		return 3
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (Config, bool, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("meshload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: meshload -url rtsp://HOST:PORT/PATH [flags]\n\n"+
			"Loads a meshgw with RTSP readers and reports delivery, loss, latency and the gateway's CPU per\n"+
			"delivered packet against a raw sendmmsg floor. Exit status: 0 done, 1 failed, 2 bad flags,\n"+
			"3 some readers failed to set up or nothing was delivered.\n\n")
		fs.PrintDefaults()
	}
	var asJSON bool
	fs.StringVar(&cfg.URL, "url", "", "RTSP URL of the route to read (required)")
	fs.IntVar(&cfg.Readers, "readers", cfg.Readers, "number of RTSP readers")
	fs.StringVar(&cfg.Transport, "transport", cfg.Transport, "readers' transport: udp or tcp")
	fs.StringVar(&cfg.Tracks, "tracks", cfg.Tracks, "tracks each reader sets up: first or all")
	fs.IntVar(&cfg.RcvBuf, "rcvbuf", cfg.RcvBuf, "UDP receive buffer in bytes (SO_RCVBUFFORCE if permitted, else SO_RCVBUF); 0 keeps the kernel default")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measuring window (the floor runs as long)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "wait after all readers play, before the window")
	fs.IntVar(&cfg.PID, "pid", 0, "gateway process to measure CPU and RSS of (/proc/PID); without it CPU figures are omitted")
	fs.BoolVar(&cfg.Publish, "publish", false, "publish synthetic H.264 RTP streams first (route must be source: publisher)")
	fs.StringVar(&cfg.PublishTransport, "publish-transport", cfg.PublishTransport, "publishers' transport: udp or tcp")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "independent published streams; with more than 1 the URL path gets suffix 0..K-1 (the older name of -routes K with -publish)")
	fs.IntVar(&cfg.Routes, "routes", cfg.Routes, "routes to read, readers dealt to them in turn; with more than 1 the URL path gets suffix 0..N-1; with -publish each gets its own publisher; loss is reported per route and track")
	fs.StringVar(&cfg.PublishURL, "publish-url", "", "publish one synthetic stream to this URL (an origin the routes pull from) instead of to the routes")
	fs.DurationVar(&cfg.WaitRoutes, "wait-routes", 0, "before the readers, wait up to this long for every route to answer DESCRIBE (pulled routes: until the pull is up); 0 does not wait")
	fs.IntVar(&cfg.Stream.Bitrate, "bitrate", cfg.Stream.Bitrate, "bits per second of each published stream (RTP headers included)")
	fs.IntVar(&cfg.Stream.FPS, "fps", cfg.Stream.FPS, "frames per second of the published stream")
	fs.IntVar(&cfg.Stream.GOP, "gop", cfg.Stream.GOP, "frames per group of pictures (one keyframe each)")
	fs.Float64Var(&cfg.Stream.KeyRatio, "keyframe-ratio", cfg.Stream.KeyRatio, "keyframe size as a multiple of a P frame")
	fs.IntVar(&cfg.Stream.MaxPacket, "pkt", cfg.Stream.MaxPacket, "largest RTP packet in bytes, header included")
	fs.BoolVar(&cfg.Floor, "floor", cfg.Floor, "after the window, run the raw sendmmsg floor (UDP readers)")
	fs.IntVar(&cfg.RxWorkers, "rx-workers", cfg.RxWorkers, "UDP receive threads")
	fs.DurationVar(&cfg.RxCoalesce, "rx-coalesce", cfg.RxCoalesce, "least time between two wakeups of a UDP receive thread; 0 wakes per datagram like a player (costs a context switch per packet, here and in the sender)")
	fs.IntVar(&cfg.SetupParallel, "setup-parallel", cfg.SetupParallel, "readers set up (and paused, torn down) at once")
	fs.DurationVar(&cfg.Keepalive, "keepalive", cfg.Keepalive, "GET_PARAMETER keepalive period")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "timeout of each RTSP request")
	fs.StringVar(&cfg.TLSCA, "tls-ca", "", "PEM certificate(s) an rtsps:// gateway's certificate is verified against (e.g. its self-signed one); default: system roots")
	fs.BoolVar(&cfg.TLSInsecure, "tls-insecure", false, "accept any rtsps:// server certificate")
	fs.BoolVar(&cfg.SRTP, "srtp", false, "require SRTP: a reader whose DESCRIBE gives no key (a=crypto or a=key-mgmt) for a track fails; keyed tracks are detected without it")
	fs.BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := cfg.validate(); err != nil {
		return cfg, false, err
	}
	return cfg, asJSON, nil
}
