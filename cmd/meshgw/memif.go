package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp/memifrtp"
)

const memifUsage = `meshgw memif -socket PATH|@NAME -id N [-secret S] [flags]
  connect to a node's memif socket as a consumer (memif slave) of interface N and print, every
  second, the packet rate, the bit rate and the RTP sequence gaps per track; or -dump FILE the
  first -count buffers (8-byte header + RTP packet each, as received). Buffers in the frames
  form count as one "packet" per frame, gaps being frame counter gaps. With -feed FILE it is a
  producer instead: it writes the buffers of FILE (as -dump wrote them: packets, or frames-form
  frames) into the interface at -rate buffers per second, for a route with source: memif://N.
`

// memifTrack is what the tool tracks of one RTP track.
type memifTrack struct {
	packets, gaps, markers uint64 // packets: buffers (RTP packets, or frames in the frames form)
	lastSeq                uint16
	lastFrame              uint64
	lastSize               int
	seen                   bool
}

func cmdMemif(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("memif", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, memifUsage); fs.PrintDefaults() }
	socket := fs.String("socket", "", "the node's memif socket: a path or @abstract name")
	id := fs.Uint("id", 0, "memif interface id")
	secret := fs.String("secret", "", "the interface's secret")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted or -count)")
	count := fs.Uint64("count", 0, "stop after this many buffers (0: no limit)")
	dump := fs.String("dump", "", "write the buffers received to FILE (header + packet each)")
	feed := fs.String("feed", "", "produce: write the buffers of FILE (as -dump writes them) into the interface")
	rate := fs.Float64("rate", 1000, "with -feed: packets per second")
	bsize := fs.Uint("bsize", 2048, "memif buffer size in bytes (packets longer than one are chained)")
	rsize := fs.Uint("rsize", 10, "log2 of the ring size")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *socket == "" || *id > 1<<32-1 || *rsize > memif.MaxLog2Ring || *bsize == 0 || *bsize > 1<<20 {
		fmt.Fprint(stderr, "meshgw memif: -socket is required; -id fits 32 bits; -rsize at most 14; -bsize 1..1048576\n")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	c, err := memif.Dial(ctx, memif.DialConfig{Socket: *socket, ID: uint32(*id), Secret: *secret, Name: "meshgw memif",
		Log2Ring: uint8(*rsize), BufferSize: uint32(*bsize)})
	if err != nil {
		fmt.Fprintf(stderr, "meshgw memif: %v\n", err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(stdout, "connected to %s (%q), interface %d, %d queue(s)\n", *socket, c.PeerName(), *id, c.Queues())
	if *feed != "" {
		return memifFeed(ctx, c, *feed, *rate, stdout, stderr)
	}
	var out *bufio.Writer
	if *dump != "" {
		f, err := os.Create(*dump)
		if err != nil {
			fmt.Fprintf(stderr, "meshgw memif: %v\n", err)
			return 1
		}
		defer f.Close()
		out = bufio.NewWriter(f)
		defer out.Flush()
	}
	rx := c.Rx(0)
	buf := make([]byte, 16<<20)
	tracks := map[uint8]*memifTrack{}
	var total, bytes, bad, lastTotal, lastBytes uint64
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	report := func(final bool) {
		el := time.Since(start).Seconds()
		line := fmt.Sprintf("%6.1fs packets=%d pkt/s=%d Mbit/s=%.1f", el, total, total-lastTotal, float64(bytes-lastBytes)*8/1e6)
		if final {
			line = fmt.Sprintf("total %.1fs packets=%d pkt/s=%.0f bad=%d", el, total, float64(total)/el, bad)
		}
		for t := range 256 {
			if tr := tracks[uint8(t)]; tr != nil {
				line += fmt.Sprintf(" track%d: packets=%d gaps=%d markers=%d", t, tr.packets, tr.gaps, tr.markers)
				if tr.lastSize > 0 {
					line += fmt.Sprintf(" frame_bytes=%d", tr.lastSize)
				}
			}
		}
		fmt.Fprintln(stdout, line)
		lastTotal, lastBytes = total, bytes
	}
	for *count == 0 || total < *count {
		n, err := rx.ReadPacket(buf)
		if err != nil && !errors.Is(err, memif.ErrTooBig) {
			fmt.Fprintf(stderr, "meshgw memif: %v\n", err)
			report(true)
			return 1
		}
		if n == 0 {
			rx.Flush()
			select {
			case <-ctx.Done():
				report(true)
				return 0
			case <-c.Done():
				fmt.Fprintf(stderr, "meshgw memif: %v\n", c.Err())
				report(true)
				return 1
			case <-tick.C:
				report(false)
			default:
			}
			_ = rx.Wait(50 * time.Millisecond)
			continue
		}
		total++
		if n >= memifrtp.FrameHeaderLen && buf[1] == memifrtp.KindFrame {
			// the frames form: one whole frame per buffer chain; gaps are counter gaps
			m, data, err := memifrtp.ParseFrame(buf[:n])
			if err != nil {
				bad++
				continue
			}
			bytes += uint64(len(data))
			tr := tracks[m.Track]
			if tr == nil {
				tr = &memifTrack{}
				tracks[m.Track] = tr
			}
			if tr.seen && m.Counter != tr.lastFrame+1 {
				tr.gaps++
			}
			tr.seen, tr.lastFrame, tr.lastSize = true, m.Counter, len(data)
			tr.packets++
			if out != nil {
				if _, err := out.Write(buf[:n]); err != nil {
					fmt.Fprintf(stderr, "meshgw memif: %v\n", err)
					return 1
				}
			}
			continue
		}
		h, pkt, err := memifrtp.ParseHeader(buf[:n])
		if err != nil {
			bad++
			continue
		}
		bytes += uint64(len(pkt))
		tr := tracks[h.Track]
		if tr == nil {
			tr = &memifTrack{}
			tracks[h.Track] = tr
		}
		seq := binary.BigEndian.Uint16(pkt[2:])
		if tr.seen && seq != tr.lastSeq+1 {
			tr.gaps++
		}
		tr.seen, tr.lastSeq = true, seq
		tr.packets++
		if h.Marker {
			tr.markers++
		}
		if out != nil {
			if _, err := out.Write(buf[:n]); err != nil {
				fmt.Fprintf(stderr, "meshgw memif: %v\n", err)
				return 1
			}
		}
	}
	rx.Flush()
	report(true)
	return 0
}

// memifFeed writes the buffers of a -dump file into c at rate packets per second.
func memifFeed(ctx context.Context, c *memif.Conn, file string, rate float64, stdout, stderr io.Writer) int {
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "meshgw memif: %v\n", err)
		return 1
	}
	defer f.Close()
	if rate <= 0 {
		rate = 1000
	}
	r := bufio.NewReader(f)
	tx := c.Tx(0)
	buf := make([]byte, 16<<20)
	var sent uint64
	start := time.Now()
	for {
		if _, err := io.ReadFull(r, buf[:memifrtp.HeaderLen]); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintf(stderr, "meshgw memif: %s: %v\n", file, err)
			return 1
		}
		hlen, n := memifrtp.HeaderLen, int(binary.LittleEndian.Uint32(buf[4:]))
		if buf[1] == memifrtp.KindFrame {
			// the frames form: a 32-byte header, the length at offset 20
			if _, err := io.ReadFull(r, buf[memifrtp.HeaderLen:memifrtp.FrameHeaderLen]); err != nil {
				fmt.Fprintf(stderr, "meshgw memif: %s: %v\n", file, err)
				return 1
			}
			hlen, n = memifrtp.FrameHeaderLen, int(binary.LittleEndian.Uint32(buf[20:]))
		}
		if n > len(buf)-hlen {
			fmt.Fprintf(stderr, "meshgw memif: %s: buffer of %d bytes\n", file, n)
			return 1
		}
		if _, err := io.ReadFull(r, buf[hlen:hlen+n]); err != nil {
			fmt.Fprintf(stderr, "meshgw memif: %s: %v\n", file, err)
			return 1
		}
		if d := time.Until(start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))); d > 0 {
			select {
			case <-ctx.Done():
				return 0
			case <-time.After(d):
			}
		}
		for {
			err := tx.WritePacket(buf[:hlen+n], nil)
			if err == nil {
				break
			}
			if !errors.Is(err, memif.ErrFull) {
				fmt.Fprintf(stderr, "meshgw memif: %v\n", err)
				return 1
			}
			tx.Flush()
			select {
			case <-ctx.Done():
				return 0
			case <-time.After(time.Millisecond):
			}
		}
		tx.Flush()
		sent++
	}
	fmt.Fprintf(stdout, "fed %d packets in %.1fs\n", sent, time.Since(start).Seconds())
	return 0
}
