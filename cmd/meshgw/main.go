// Command meshgw runs the media mesh gateway. With no arguments it runs the all-in-one gateway
// (control plus local node) on its embedded default config, which serves a demo stream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meshgw/meshgw/gateway"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/identity"
	"github.com/meshgw/meshgw/gateway/ops"
	"github.com/meshgw/meshgw/gateway/reload"
)

const usage = `meshgw - media mesh gateway (RTSP control proxy and RTP forwarders)

Usage:
  meshgw [run] [-c FILE]     run control and local node (default: embedded config with a demo route)
  meshgw control -c FILE     run a cluster's control: RTSP front door, local node, gRPC for nodes (mTLS)
  meshgw node -c FILE [-name NAME] [-data-address IP]
                             run a node that attaches to the control named by node.control
  meshgw check -c FILE       validate a config file; prints FILE:LINE: message for every error
  meshgw certs -dir DIR -td TRUST_DOMAIN NODE...   mint a test CA and SPIFFE SVIDs (control + nodes)
  meshgw passwd [-realm R] [-hash argon2id|bcrypt] USER < password
                             print an auth.users entry (password hash and Digest HA1s)
  meshgw roq pull [-rtp IP:PORT] [-sdp FILE] [-mode datagram|stream] quic://HOST:PORT/ROUTE
                             pull a route over RTP over QUIC and relay it as RTP/UDP plus an SDP
  meshgw roq push -sdp FILE [-rtp IP:PORT] [-mode datagram|stream] quic://HOST:PORT/ROUTE
                             publish a local RTP/UDP stream into a publisher route over RTP over QUIC
  meshgw memif -socket PATH|@NAME -id N [-secret S] [-duration D] [-count N] [-dump FILE]
                             consume a route from a node's memif interface: rates, gaps per track
  meshgw version             print the version
  meshgw help                print this help

Flags of run and check:
  -c FILE   config file (YAML); run without -c uses the embedded default config

Flags of run only:
  -upgrade-socket PATH   Unix socket for upgrades: take the listening sockets of the meshgw
                         running on PATH (if any), then offer them to the next one on PATH
  -upgrade-drain D       after handing over, how long players may stay (default 1h)

Signals of run, control and node: SIGHUP reloads the -c file (and so does saving it, unless
watch_config: false); SIGINT and SIGTERM stop; SIGUSR2 (run with -upgrade-socket) starts a
successor that takes over the listeners while this process drains its players. Run meshgw
check first to see what a reload would refuse.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stdout, stderr)
	case "control":
		return cmdControl(args, stdout, stderr)
	case "node":
		return cmdNode(args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "certs":
		return cmdCerts(args, stdout, stderr)
	case "passwd":
		return cmdPasswd(args, os.Stdin, stdout, stderr)
	case "roq":
		return cmdRoQ(args, stdout, stderr)
	case "memif":
		return cmdMemif(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "meshgw: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// versionString is the module version and VCS revision the toolchain recorded in the binary.
func versionString() string { return ops.Build().String() }

func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	file := fs.String("c", "", "config file")
	return fs, file
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, file := flags("check", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "meshgw check: -c FILE is required")
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// a running meshgw reloads the same way: run this before SIGHUP or saving over its file
	fmt.Fprintf(stdout, "%s: ok (%d routes)\n", *file, len(cfg.Routes))
	return 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs, file := flags("run", stderr)
	sock := fs.String("upgrade-socket", "", "Unix socket for upgrades: take the listeners of the meshgw on it, then offer them on it")
	drainFor := fs.Duration("upgrade-drain", time.Hour, "after handing over, how long connections may stay before they are ended")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var (
		cfg *config.Config
		err error
	)
	if *file == "" {
		cfg = config.Default()
	} else if cfg, err = config.Load(*file); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *drainFor <= 0 {
		fmt.Fprintln(stderr, "meshgw run: -upgrade-drain must be positive")
		return 2
	}
	return serve(cfg, *file, nil, stderr, func(ctx context.Context, log *slog.Logger) (service, error) {
		if *sock != "" {
			return openUpgradable(ctx, cfg, *sock, *drainFor, log)
		}
		return gateway.Open(ctx, cfg, log)
	})
}

// service is what a command runs (a gateway, a control, a node): it takes a reloaded config and
// is closed at the end.
type service interface {
	io.Closer
	Reload(context.Context, *config.Config) error
}

// serve runs what open starts until SIGINT or SIGTERM, logging as the config says. SIGHUP and,
// with watch_config, a change of file reload the config (gateway/reload); file is "" for the
// embedded default config, which has nothing to reload. prepare adjusts each reloaded config as
// the command adjusted the first (its flags).
func serve(cfg *config.Config, file string, prepare func(*config.Config) error, stderr io.Writer, open func(context.Context, *slog.Logger) (service, error)) int {
	level := new(slog.LevelVar) // log_level changes on reload
	level.Set(cfg.SlogLevel())
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.LogFormat == config.LogJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Before anything starts: SIGHUP's default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// SIGUSR2 upgrades a run with -upgrade-socket; otherwise it is logged and ignored rather than
	// ending the process (its default action).
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	gw, err := open(ctx, log)
	if err != nil {
		log.Error("meshgw failed to start", "err", err)
		return 1
	}
	// With -upgrade-socket: SIGUSR2 starts a successor, and a successor's takeover ends this one.
	var handed <-chan struct{}
	up, upgradable := gw.(handing)
	if upgradable {
		handed = up.handedOver()
	}
	// rl.Reload (load the file, validate, apply) is the reload action an HTTP API can call.
	var rl *reload.Reloader
	if file != "" {
		rl = reload.New(reload.Config{File: file, Current: cfg, Target: gw, Prepare: prepare, Logger: log,
			Applied: func(c *config.Config) { level.Set(c.SlogLevel()) }})
		if err := rl.Watch(); err != nil {
			log.Warn("config file not watched; reload it with SIGHUP", "err", err)
		}
	}
	opsSrv := opsOf(gw)
	if opsSrv != nil && rl != nil {
		opsSrv.SetReload(rl.Reload) // the API's POST /v1/reload
	}
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-handed:
			if rl != nil { // the successor reloads from now on
				if opsSrv != nil {
					opsSrv.SetReload(nil)
				}
				_ = rl.Close()
				rl = nil
			}
			up.drain(ctx, log)
			break wait
		case <-usr2:
			if !upgradable {
				log.Warn("SIGUSR2: an upgrade needs meshgw run -upgrade-socket; ignored")
				continue
			}
			log.Info("SIGUSR2: starting a successor")
			if err := up.spawn(); err != nil {
				log.Error("SIGUSR2: no successor", "err", err)
			}
		case <-hup:
			if rl == nil {
				log.Warn("SIGHUP: running on the embedded default config, which has no file to reload; ignored")
				continue
			}
			_ = rl.Reload(ctx) // logged, and a refused file leaves the running config
		}
	}
	log.Info("meshgw stopping")
	if rl != nil {
		_ = rl.Close()
	}
	if err := gw.Close(); err != nil {
		log.Error("meshgw stopped with an error", "err", err)
		return 1
	}
	return 0
}

// opsOf is the operations listener of what serve started, nil without an api: section.
func opsOf(gw service) *ops.Server {
	if o, ok := gw.(interface{ Ops() *ops.Server }); ok {
		return o.Ops()
	}
	return nil
}

// loadRequired parses the flags and loads the -c file, which the cluster roles require.
func loadRequired(fs *flag.FlagSet, file *string, args []string, stderr io.Writer) (*config.Config, int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	if *file == "" {
		fmt.Fprintf(stderr, "meshgw %s: -c FILE is required\n", fs.Name())
		return nil, 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, 1
	}
	return cfg, -1
}

func cmdControl(args []string, stdout, stderr io.Writer) int {
	fs, file := flags("control", stderr)
	cfg, rc := loadRequired(fs, file, args, stderr)
	if cfg == nil {
		return rc
	}
	if cfg.Node.IsNodeOnly() {
		fmt.Fprintf(stderr, "meshgw control: %s configures a node (node.control is set); run it with meshgw node\n", *file)
		return 1
	}
	return serve(cfg, *file, nil, stderr, func(ctx context.Context, log *slog.Logger) (service, error) {
		return gateway.OpenControl(ctx, cfg, log)
	})
}

func cmdNode(args []string, stdout, stderr io.Writer) int {
	fs, file := flags("node", stderr)
	name := fs.String("name", "", "node name (overrides node.name; e.g. the Kubernetes node name)")
	data := fs.String("data-address", "", "data address (overrides node.data_address; e.g. the host IP)")
	cfg, rc := loadRequired(fs, file, args, stderr)
	if cfg == nil {
		return rc
	}
	if !cfg.Node.IsNodeOnly() {
		fmt.Fprintf(stderr, "meshgw node: %s has no node.control; a node needs the control's address\n", *file)
		return 1
	}
	// the flags override the file, also in a reloaded one
	override := func(c *config.Config) error {
		if *name != "" {
			if err := identity.ValidateNodeName(*name); err != nil {
				return fmt.Errorf("-name: %w", err)
			}
			c.Node.Name = *name
		}
		if *data != "" {
			a, err := netip.ParseAddr(*data)
			if err != nil || a.IsUnspecified() || a.IsMulticast() {
				return fmt.Errorf("-data-address %q is not a unicast IP address", *data)
			}
			c.Node.DataAddress = a.Unmap()
		}
		return nil
	}
	if err := override(cfg); err != nil {
		fmt.Fprintf(stderr, "meshgw node: %v\n", err)
		return 2
	}
	return serve(cfg, *file, override, stderr, func(ctx context.Context, log *slog.Logger) (service, error) {
		return gateway.OpenNode(ctx, cfg, log)
	})
}
