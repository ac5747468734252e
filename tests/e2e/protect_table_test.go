package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/internal/peertest"
)

// TestProtectionTable measures residual loss through meshgw: a sender (MPEG-TS-sized RTP packets,
// PT 33, with SMPTE 2022-1 FEC from package fec's encoder, or two identical 2022-7 legs) →
// lossy relay(s) on the media → a meshgw rtp:// route → an RTSP reader over TCP, whose sequence
// line gives the residual loss. It takes a few minutes, so it runs only with
// MESHGW_PROTECT_TABLE=1:
//
//	MESHGW_PROTECT_TABLE=1 go test -count=1 -run TestProtectionTable -v ./tests/e2e
func TestProtectionTable(t *testing.T) {
	if os.Getenv("MESHGW_PROTECT_TABLE") == "" {
		t.Skip("set MESHGW_PROTECT_TABLE=1 to measure the residual-loss table")
	}
	const (
		measured = 6000 // packets whose loss is counted
		tail     = 400  // sent after them, so the last matrices get their FEC
		rate     = 2000 // packets/s
	)
	type loss struct {
		name       string
		leg1, leg2 peertest.LossyConfig
	}
	losses := []loss{
		{"random 1%", peertest.LossyConfig{Random: 0.01, Seed: 11}, peertest.LossyConfig{Random: 0.01, Seed: 12}},
		{"random 5%", peertest.LossyConfig{Random: 0.05, Seed: 21}, peertest.LossyConfig{Random: 0.05, Seed: 22}},
		{"random 10%", peertest.LossyConfig{Random: 0.10, Seed: 31}, peertest.LossyConfig{Random: 0.10, Seed: 32}},
		// leg 2's bursts are half a period out of phase with leg 1's
		{"burst 5 /1000", peertest.LossyConfig{Burst: 5, BurstEvery: 1000}, peertest.LossyConfig{Burst: 5, BurstEvery: 1000, BurstOffset: 500}},
		{"burst 20 /1000", peertest.LossyConfig{Burst: 20, BurstEvery: 1000}, peertest.LossyConfig{Burst: 20, BurstEvery: 1000, BurstOffset: 500}},
	}
	type protection struct {
		name string
		fec  *fec.Config
		legs int
	}
	prots := []protection{{name: "none", legs: 1}}
	for _, m := range [][2]int{{5, 5}, {10, 10}, {20, 5}} {
		prots = append(prots,
			protection{fmt.Sprintf("1D %d×%d", m[0], m[1]), &fec.Config{Columns: m[0], Rows: m[1], Mode: fec.ModeColumn}, 1},
			protection{fmt.Sprintf("2D %d×%d", m[0], m[1]), &fec.Config{Columns: m[0], Rows: m[1]}, 1})
	}
	prots = append(prots, protection{"2022-7 (2 legs)", nil, 2})

	res := map[[2]string]string{}
	for _, pr := range prots {
		for _, ls := range losses {
			t.Run(pr.name+"/"+ls.name, func(t *testing.T) {
				p1 := freeRTPBase(t)
				extra := ""
				if pr.fec != nil {
					rows := pr.fec.Rows
					extra = fmt.Sprintf("    fec: {columns: %d, rows: %d}\n", pr.fec.Columns, rows)
				}
				var p2 int
				if pr.legs == 2 {
					for p2 = freeRTPBase(t); p2 >= p1-1 && p2 <= p1+5; p2 = freeRTPBase(t) {
					}
					extra = fmt.Sprintf("    live_live: {leg2: \"rtp://127.0.0.1:%d\", skew: B}\n", p2)
				}
				g := rtpGateway(t, p1, extra)
				c1 := ls.leg1
				c1.To = loopback(p1)
				dsts := []tableDst{{media: peertest.StartLossyRelay(t, c1).Addr(), fec: p1}}
				if pr.legs == 2 {
					c2 := ls.leg2
					c2.To = loopback(p2)
					dsts = append(dsts, tableDst{media: peertest.StartLossyRelay(t, c2).Addr(), fec: p2})
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var wg sync.WaitGroup
				wg.Add(1)
				var sendErr error
				go func() {
					defer wg.Done()
					sendErr = sendTableStream(ctx, dsts, pr.fec, measured+tail, rate)
				}()
				t0 := time.Now()
				r := startGoReader(t, g.URL+"ts", "tcp")
				t.Logf("reader started after %v", time.Since(t0))
				wg.Wait()
				t.Logf("sender done after %v", time.Since(t0))
				if sendErr != nil {
					t.Fatal(sendErr)
				}
				r.settle(10 * time.Second)
				pkts := r.packets(0)
				t.Logf("settled after %v", time.Since(t0))
				gaps, span := seqGaps(pkts)
				window := span - tail
				if window < measured/2 {
					t.Fatalf("reader saw only %d sequence numbers", span)
				}
				missing := 0
				for _, g := range gaps {
					if g < window {
						missing++
					}
				}
				st := rtpSourceStats(t, g)
				cell := fmt.Sprintf("%.2f%%", 100*float64(missing)/float64(window))
				res[[2]string{pr.name, ls.name}] = cell
				t.Logf("%s, %s: reader missed %d of %d (%s); meshgw recovered %d, unrecoverable %d, legs %+v",
					pr.name, ls.name, missing, window, cell, st.Recovered, st.Unrecoverable, st.Legs)
			})
		}
	}
	var b strings.Builder
	b.WriteString("\nResidual loss at the reader (sequence numbers missing / sent), " +
		fmt.Sprintf("%d packets of 1328 bytes at %d packets/s per cell\n\n", measured, rate))
	b.WriteString("| protection |")
	for _, ls := range losses {
		b.WriteString(" " + ls.name + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(losses)) + "\n")
	for _, pr := range prots {
		b.WriteString("| " + pr.name + " |")
		for _, ls := range losses {
			c := res[[2]string{pr.name, ls.name}]
			if c == "" {
				c = "–"
			}
			b.WriteString(" " + c + " |")
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
}

// tableDst is where one leg of the table's sender goes: media to a relay, FEC straight to
// meshgw's port+2 and port+4 (the relays drop only media).
type tableDst struct {
	media netip.AddrPort
	fec   int
}

// sendTableStream sends n RTP packets (PT 33, 1316-byte payloads, as MPEG-TS over RTP) at rate
// packets/s to every destination, with 2022-1 FEC from cfg when it is not nil.
func sendTableStream(ctx context.Context, dsts []tableDst, cfg *fec.Config, n, rate int) error {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetWriteBuffer(4 << 20)
	var enc *fec.Encoder
	if cfg != nil {
		if enc, err = fec.NewEncoder(*cfg); err != nil {
			return err
		}
	}
	emit := func(k fec.Kind, b []byte) {
		off := 2
		if k == fec.Row {
			off = 4
		}
		for _, d := range dsts {
			_, _ = conn.WriteToUDPAddrPort(b, loopback(d.fec+off))
		}
	}
	pkt := make([]byte, 12+1316)
	pkt[0], pkt[1] = 0x80, 33
	binary.BigEndian.PutUint32(pkt[8:], 0x5ee1f00d)
	perTick := rate / 100
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		if i%perTick == 0 && i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		binary.BigEndian.PutUint16(pkt[2:], uint16(40000+i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*45))
		for j := 12; j < len(pkt); j += 188 {
			pkt[j], pkt[j+1], pkt[j+2] = 0x47, byte(i>>8), byte(i)
		}
		for _, d := range dsts {
			if _, err := conn.WriteToUDPAddrPort(pkt, d.media); err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
		if enc != nil {
			if err := enc.Push(pkt, emit); err != nil {
				return err
			}
		}
	}
	return nil
}
