// Command roqpeer is an independent RoQ client for meshgw's interop test: it receives a route
// from meshgw's quic: listener with github.com/mengelbart/roq v0.2.0 (on quic-go v0.44.0),
// checks that what arrives on each flow is RTP, and sends RTCP receiver reports back. It is a
// module of its own because that library needs the quic-go Connection interface that quic-go
// removed in v0.53, while meshgw uses v0.65.
//
// What of the peer is worked around:
//   - Its datagram sender (SendFlow.WriteRTPBytes) writes the flow ID into an unused part of its
//     scratch buffer, so every datagram it sends carries flow ID 0 (fixed upstream after v0.2.0,
//     unreleased). Its receive reports therefore go on a stream of their own
//     (SendFlow.NewSendStream), whose framing is correct, never as datagrams.
//   - It does not set an ALPN and knows nothing of meshgw's signalling: this program offers the
//     ALPN and speaks the one-line request on the first bidirectional stream itself, on the
//     quic-go connection the library session shares.
//   - Its ReceiveFlow.Read gives up after a hard-coded second of silence ("deadline exceeded"):
//     the readers loop until their own deadline.
//   - It buffers packets of flows not yet created in a racy way: the receive flows are made
//     before the request is sent.
//   - Session.Close hangs once the reading stopped (its datagram goroutines block on the full
//     buffers of the flows): the program closes the QUIC connection and exits instead.
//
// It prints one line per flow, "flow F packets N valid V ssrc S", then "reports R".
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mengelbart/roq"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/quic-go/quic-go"
)

func main() {
	addr := flag.String("addr", "", "meshgw quic: listener host:port")
	path := flag.String("path", "/demo", "route path")
	mode := flag.String("mode", "datagram", "datagram or stream")
	ca := flag.String("ca", "", "PEM CA of the server certificate")
	alpn := flag.String("alpn", "roq-14", "ALPN to offer")
	dur := flag.Duration("t", 3*time.Second, "how long to receive")
	flag.Parse()
	if err := run(*addr, *path, *mode, *ca, *alpn, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "roqpeer:", err)
		os.Exit(1)
	}
}

type flowCount struct {
	mu      sync.Mutex
	packets int
	valid   int
	ssrc    uint32
	maxSeq  uint16
}

func run(addr, path, mode, caFile, alpn string, dur time.Duration) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), dur+10*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, addr, &tls.Config{RootCAs: pool, NextProtos: []string{alpn}},
		&quic.Config{EnableDatagrams: true, MaxIncomingUniStreams: 1000})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	sess, err := roq.NewSession(roq.NewQUICGoConnection(conn), mode == "datagram")
	if err != nil {
		return err
	}
	// not sess.Close: it waits for its datagram goroutines, which block pushing into the full
	// buffers of flows nobody reads any more; the connection's close and the exit end them
	defer conn.CloseWithError(0, "")
	// meshgw's numbering: track i's RTP on flow 2i, its RTCP on 2i+1
	flows := []uint64{0, 2}
	counts := map[uint64]*flowCount{}
	var readers []*roq.ReceiveFlow
	for _, id := range flows {
		rf, err := sess.NewReceiveFlow(id)
		if err != nil {
			return err
		}
		readers = append(readers, rf)
		counts[id] = &flowCount{}
	}
	ctl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("control stream: %w", err)
	}
	if _, err := fmt.Fprintf(ctl, "PLAY %s %s\n", path, mode); err != nil {
		return err
	}
	br := bufio.NewReader(ctl)
	status, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if !strings.HasPrefix(status, "200 ") {
		return fmt.Errorf("refused: %s", strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("answer: %w", err)
		}
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "sdp "); ok {
			size, err := strconv.Atoi(n)
			if err != nil {
				return err
			}
			if _, err := io.CopyN(io.Discard, br, int64(size)); err != nil {
				return err
			}
			break
		}
	}
	end := time.Now().Add(dur)
	var wg sync.WaitGroup
	for i, rf := range readers {
		c := counts[flows[i]]
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<16)
			for time.Now().Before(end) {
				n, err := rf.Read(buf)
				if err != nil {
					continue // "deadline exceeded" after 1 s of silence
				}
				var p rtp.Packet
				c.mu.Lock()
				c.packets++
				if p.Unmarshal(buf[:n]) == nil && p.Version == 2 {
					c.valid++
					c.ssrc = p.SSRC
					c.maxSeq = p.SequenceNumber
				}
				c.mu.Unlock()
			}
		}()
	}
	// receiver reports about track 0, each on a stream of its own (see the package comment)
	rtcpFlow, err := sess.NewSendFlow(1)
	if err != nil {
		return err
	}
	reports := 0
	for time.Now().Before(end) {
		time.Sleep(300 * time.Millisecond)
		c := counts[0]
		c.mu.Lock()
		ssrc, seq := c.ssrc, c.maxSeq
		c.mu.Unlock()
		if ssrc == 0 {
			continue
		}
		rr, err := (&rtcp.ReceiverReport{SSRC: 0x5eed, Reports: []rtcp.ReceptionReport{{SSRC: ssrc, LastSequenceNumber: uint32(seq), Jitter: 90}}}).Marshal()
		if err != nil {
			return err
		}
		s, err := rtcpFlow.NewSendStream(ctx)
		if err != nil {
			return fmt.Errorf("rtcp stream: %w", err)
		}
		if _, err := s.WriteRTPBytes(rr); err != nil {
			return fmt.Errorf("rtcp: %w", err)
		}
		_ = s.Close()
		reports++
	}
	wg.Wait()
	for _, id := range flows {
		c := counts[id]
		fmt.Printf("flow %d packets %d valid %d ssrc %d\n", id, c.packets, c.valid, c.ssrc)
	}
	fmt.Printf("reports %d\n", reports)
	_ = ctl.Close()
	return nil
}
