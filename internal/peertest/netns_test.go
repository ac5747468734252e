package peertest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func netnsExists(t *testing.T, name string) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// tcpCheck listens with socat on server and connects from client.
func tcpCheck(t *testing.T, server, client *Host) {
	t.Helper()
	tcpCheckAt(t, server, server.Addr.String(), client)
}

// tcpCheckAt is tcpCheck to the server's address addr.
func tcpCheckAt(t *testing.T, server *Host, addr string, client *Host) {
	t.Helper()
	ctx := context.Background()
	srv := server.Run(ctx, t, "socat", "-u", "TCP-LISTEN:7000,bind="+addr+",reuseaddr", "STDOUT")
	time.Sleep(300 * time.Millisecond) // let socat bind
	cmd := client.Command(ctx, "socat", "-u", "STDIN", "TCP:"+addr+":7000,connect-timeout=5")
	cmd.Stdin = strings.NewReader("hello from " + client.Name + "\n")
	Start(t, cmd).MustSucceed(20 * time.Second)
	if out := srv.MustSucceed(20 * time.Second); !strings.Contains(out, "hello from "+client.Name) {
		t.Errorf("%s got %q", server, out)
	}
}

func TestNetnsPair(t *testing.T) {
	Require(t, "socat")
	var names []string
	t.Run("pair", func(t *testing.T) {
		nn := NewNetns(t, "mgwtest")
		if len(nn.Hosts) != 2 || nn.Hosts[0].Addr.String() != "10.99.0.1" || nn.Hosts[1].Addr.String() != "10.99.0.2" {
			t.Fatalf("hosts %v", nn.Hosts)
		}
		for _, h := range nn.Hosts {
			names = append(names, h.Name)
			out := h.Run(context.Background(), t, "ip", "route", "show").MustSucceed(10 * time.Second)
			if !strings.Contains(out, "224.0.0.0/4 dev "+NetnsDev) {
				t.Errorf("%s: no multicast route:\n%s", h, out)
			}
		}
		tcpCheck(t, nn.Hosts[0], nn.Hosts[1])
	})
	for _, n := range names {
		if netnsExists(t, n) {
			t.Errorf("namespace %s still exists after the test", n)
		}
	}
}

func TestNetnsBridge(t *testing.T) {
	Require(t, "socat")
	nn := NewNetnsN(t, "mgwtest", 3)
	if nn.Hub == "" || len(nn.Hosts) != 3 {
		t.Fatalf("hub %q hosts %v", nn.Hub, nn.Hosts)
	}
	tcpCheck(t, nn.Hosts[0], nn.Hosts[2])
	tcpCheck(t, nn.Hosts[2], nn.Hosts[1])
}

// TestNetnsSecondLink: AddLink2 joins some hosts on a second link, numbered like the first, and
// leaves the others off it.
func TestNetnsSecondLink(t *testing.T) {
	Require(t, "socat")
	nn := NewNetnsN(t, "mgwtest", 4)
	a, b, off := nn.Hosts[1], nn.Hosts[3], nn.Hosts[2]
	nn.AddLink2(t, a, b)
	if a.Addr2.String() != "10.98.0.2" || b.Addr2.String() != "10.98.0.4" || a.Dev2 != NetnsDev2 || a.Port2 != "q1" || a.Port != "p1" {
		t.Fatalf("second link: %+v %+v", a, b)
	}
	if off.Dev2 != "" || off.Addr2.IsValid() {
		t.Fatalf("host %s got a second link: %+v", off, off)
	}
	tcpCheckAt(t, b, b.Addr2.String(), a)
	tcpCheckAt(t, a, a.Addr2.String(), b)
	// the host left off has no route to the second link
	out, err := off.Command(context.Background(), "ip", "route", "get", b.Addr2.String()).CombinedOutput()
	if err == nil {
		t.Errorf("%s has a route to %s: %s", off, b.Addr2, out)
	}
	if hub := nn.HubHost(); hub == nil || hub.Name != nn.Hub {
		t.Errorf("HubHost %v, hub %q", hub, nn.Hub)
	}
}

// TestNetnsMulticastCamera pulls the camera's multicast stream across the
// veth link: server and client must be in different namespaces.
func TestNetnsMulticastCamera(t *testing.T) {
	Require(t, "ffmpeg")
	nn := NewNetns(t, "mgwtest")
	srv, cli := nn.Hosts[0], nn.Hosts[1]
	// Multicast only: frames arriving at all prove the multicast path.
	cam := StartCamera(t, CameraOpts{Host: srv, Size: "320x240", Audio: "none", Protocols: []string{"mcast"}})
	if want := srv.Addr.String(); !strings.Contains(cam.URL(), want) {
		t.Fatalf("camera URL %s does not use %s", cam.URL(), want)
	}
	out := cli.Run(context.Background(), t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats",
		"-rtsp_transport", "udp_multicast", "-i", cam.URL(), "-t", "2", "-f", "null", "-").MustSucceed(40 * time.Second)
	if n, ok := FFmpegFrames(out); !ok || n < 40 {
		t.Errorf("multicast: %d frames in 2 s, want ~50", n)
	}
}
