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

	"github.com/meshgw/meshgw/gateway"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/identity"
	"github.com/meshgw/meshgw/gateway/ops"
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
  meshgw version             print the version
  meshgw help                print this help

Flags of run and check:
  -c FILE   config file (YAML); run without -c uses the embedded default config
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
	fmt.Fprintf(stdout, "%s: ok (%d routes)\n", *file, len(cfg.Routes))
	return 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs, file := flags("run", stderr)
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
	return serve(cfg, stderr, func(ctx context.Context, log *slog.Logger) (io.Closer, error) {
		return gateway.Open(ctx, cfg, log)
	})
}

// serve runs what open starts until SIGINT or SIGTERM, logging as the config says.
func serve(cfg *config.Config, stderr io.Writer, open func(context.Context, *slog.Logger) (io.Closer, error)) int {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.LogFormat == config.LogJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gw, err := open(ctx, log)
	if err != nil {
		log.Error("meshgw failed to start", "err", err)
		return 1
	}
	<-ctx.Done()
	log.Info("meshgw stopping")
	if err := gw.Close(); err != nil {
		log.Error("meshgw stopped with an error", "err", err)
		return 1
	}
	return 0
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
	return serve(cfg, stderr, func(ctx context.Context, log *slog.Logger) (io.Closer, error) {
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
	if *name != "" {
		if err := identity.ValidateNodeName(*name); err != nil {
			fmt.Fprintf(stderr, "meshgw node: -name: %v\n", err)
			return 2
		}
		cfg.Node.Name = *name
	}
	if *data != "" {
		a, err := netip.ParseAddr(*data)
		if err != nil || a.IsUnspecified() || a.IsMulticast() {
			fmt.Fprintf(stderr, "meshgw node: -data-address %q is not a unicast IP address\n", *data)
			return 2
		}
		cfg.Node.DataAddress = a.Unmap()
	}
	return serve(cfg, stderr, func(ctx context.Context, log *slog.Logger) (io.Closer, error) {
		return gateway.OpenNode(ctx, cfg, log)
	})
}
