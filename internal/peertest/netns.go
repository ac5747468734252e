package peertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NetnsDev is the name of each host's interface inside its namespace.
const NetnsDev = "eth0"

// NetnsSubnet is the private subnet the namespace hosts are numbered from:
// host i gets 10.99.0.(i+1).
const NetnsSubnet = "10.99.0.0/24"

// NetnsDev2 is the name of a host's interface on the second link (AddLink2).
const NetnsDev2 = "eth1"

// NetnsSubnet2 numbers the second link: host i gets 10.98.0.(i+1) on it.
const NetnsSubnet2 = "10.98.0.0/24"

// Netns is a set of network namespaces ("hosts") on one private link: a
// veth pair for two hosts, or a Linux bridge (in an extra namespace) for
// more.  Every host also has lo up and a 224.0.0.0/4 route on its
// interface, so multicast works between the hosts.  All of it is removed
// when the test ends.
type Netns struct {
	// Hosts are the namespaces, in creation order.
	Hosts []*Host
	// Hub is the namespace holding the bridge "br0" when there are more
	// than two hosts ("" otherwise), and "br1" once AddLink2 made it.
	Hub string
}

// Host is one network namespace made by NewNetns.
type Host struct {
	// Name is the namespace name (for `ip netns exec`).
	Name string
	// Dev is the interface on the shared link (NetnsDev).
	Dev string
	// Addr is the host's address on the link (in NetnsSubnet).
	Addr netip.Addr
	// Port is the hub's end of the host's veth on br0 ("" for a pair):
	// rules there act on what the host sends before the link carries it.
	Port string
	// Dev2, Addr2 and Port2 are the same on the second link (br1); empty
	// unless AddLink2 gave the host one.
	Dev2  string
	Addr2 netip.Addr
	Port2 string
}

// NewNetns creates two hosts joined by a veth pair (see NewNetnsN).
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	return NewNetnsN(t, prefix, 2)
}

// NewNetnsN creates n >= 2 hosts named PREFIX-PID-RAND-hI on one link with
// addresses 10.99.0.1, 10.99.0.2, ... and registers their deletion (and
// the killing of any process still inside) with t.Cleanup.  Namespaces
// left behind by earlier runs with the same prefix whose process is gone
// are deleted first.  It skips the test (or fails it under
// MESHGW_REQUIRE_PEERS=1) when namespaces cannot be created.
func NewNetnsN(t testing.TB, prefix string, n int) *Netns {
	t.Helper()
	if n < 2 || n > 250 {
		t.Fatalf("NewNetnsN: n = %d, want 2..250", n)
	}
	if prefix == "" || strings.ContainsAny(prefix, "/ \t\n") {
		t.Fatalf("NewNetnsN: bad prefix %q", prefix)
	}
	RequireNetns(t)
	removeStaleNetns(t, prefix)

	base := fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), randHex(3))
	nn := &Netns{}
	t.Cleanup(func() { nn.destroy(t) })

	ip := func(args ...string) {
		t.Helper()
		runIP(t, args...)
	}
	addNS := func(name string) {
		t.Helper()
		ip("netns", "add", name)
		ip("-n", name, "link", "set", "lo", "up")
	}

	subnet := netip.MustParsePrefix(NetnsSubnet)
	hostBits := subnet.Addr().As4()
	for i := range n {
		h := &Host{Name: fmt.Sprintf("%s-h%d", base, i), Dev: NetnsDev}
		a := hostBits
		a[3] = byte(i + 1)
		h.Addr = netip.AddrFrom4(a)
		nn.Hosts = append(nn.Hosts, h)
		addNS(h.Name)
	}
	if n == 2 {
		a, b := nn.Hosts[0], nn.Hosts[1]
		ip("-n", a.Name, "link", "add", a.Dev, "type", "veth", "peer", "name", b.Dev, "netns", b.Name)
	} else {
		nn.Hub = base + "-br"
		addNS(nn.Hub)
		ip("-n", nn.Hub, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
		ip("-n", nn.Hub, "link", "set", "br0", "up")
		for i, h := range nn.Hosts {
			port := "p" + strconv.Itoa(i)
			h.Port = port
			ip("-n", h.Name, "link", "add", h.Dev, "type", "veth", "peer", "name", port, "netns", nn.Hub)
			ip("-n", nn.Hub, "link", "set", port, "master", "br0")
			ip("-n", nn.Hub, "link", "set", port, "up")
		}
	}
	for _, h := range nn.Hosts {
		ip("-n", h.Name, "addr", "add", fmt.Sprintf("%s/%d", h.Addr, subnet.Bits()), "dev", h.Dev)
		ip("-n", h.Name, "link", "set", h.Dev, "up")
		ip("-n", h.Name, "route", "add", "224.0.0.0/4", "dev", h.Dev)
	}
	return nn
}

// runIP runs the ip program and fails the test if it fails.
func runIP(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// AddLink2 joins the given hosts (of a set with a hub, n > 2) on a second,
// independent link: a bridge "br1" in the hub namespace, a veth NetnsDev2
// in each host and the address 10.98.0.(i+1) for host i (NetnsSubnet2),
// so a host keeps its index on both links.  Nothing is routed between the
// links.  It fills in the hosts' Dev2, Addr2 and Port2 (hub port "qI").
// Call it once per set; everything goes with the namespaces.
func (nn *Netns) AddLink2(t testing.TB, hosts ...*Host) {
	t.Helper()
	if nn.Hub == "" {
		t.Fatal("AddLink2: the set has no hub (it needs n > 2 hosts)")
	}
	subnet := netip.MustParsePrefix(NetnsSubnet2)
	runIP(t, "-n", nn.Hub, "link", "add", "br1", "type", "bridge", "mcast_snooping", "0")
	runIP(t, "-n", nn.Hub, "link", "set", "br1", "up")
	for _, h := range hosts {
		i := slices.Index(nn.Hosts, h)
		if i < 0 {
			t.Fatalf("AddLink2: %s is not a host of this set", h)
		}
		if h.Dev2 != "" {
			t.Fatalf("AddLink2: %s already has a second link", h)
		}
		a := subnet.Addr().As4()
		a[3] = byte(i + 1)
		h.Dev2, h.Addr2, h.Port2 = NetnsDev2, netip.AddrFrom4(a), "q"+strconv.Itoa(i)
		runIP(t, "-n", h.Name, "link", "add", h.Dev2, "type", "veth", "peer", "name", h.Port2, "netns", nn.Hub)
		runIP(t, "-n", nn.Hub, "link", "set", h.Port2, "master", "br1")
		runIP(t, "-n", nn.Hub, "link", "set", h.Port2, "up")
		runIP(t, "-n", h.Name, "addr", "add", fmt.Sprintf("%s/%d", h.Addr2, subnet.Bits()), "dev", h.Dev2)
		runIP(t, "-n", h.Name, "link", "set", h.Dev2, "up")
	}
}

// HubHost is the hub namespace as a Host (Name only), for running
// programs there, e.g. nft on the hub ports; nil for a pair.
func (nn *Netns) HubHost() *Host {
	if nn.Hub == "" {
		return nil
	}
	return &Host{Name: nn.Hub}
}

// names returns all namespaces of the set, hub last.
func (nn *Netns) names() []string {
	var names []string
	for _, h := range nn.Hosts {
		names = append(names, h.Name)
	}
	if nn.Hub != "" {
		names = append(names, nn.Hub)
	}
	return names
}

func (nn *Netns) destroy(t testing.TB) {
	for _, name := range nn.names() {
		if err := deleteNetns(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	}
}

// deleteNetns kills every process inside the namespace, then deletes it
// (which also removes its interfaces).
func deleteNetns(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "del", name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeStaleNetns deletes namespaces named PREFIX-PID-... whose PID no
// longer runs (left behind by a killed test binary).  Namespaces of live
// processes, e.g. parallel test binaries, are left alone.
func removeStaleNetns(t testing.TB, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		name := fields[0]
		rest, ok := strings.CutPrefix(name, prefix+"-")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // still running (or not ours to judge)
		}
		t.Logf("removing stale network namespace %s", name)
		if err := deleteNetns(name); err != nil {
			t.Logf("remove stale netns %s: %v", name, err)
		}
	}
}

// Command returns a command that runs name inside the host's namespace
// (via `ip netns exec`).  Start it with Start to get output capture and
// cleanup, or use Run.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Run starts name inside the host's namespace like the package function
// Run does on this host.
func (h *Host) Run(ctx context.Context, t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return Start(t, h.Command(ctx, name, args...))
}

// String returns "NAME (ADDR)".
func (h *Host) String() string { return fmt.Sprintf("%s (%s)", h.Name, h.Addr) }
