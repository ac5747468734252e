package rtp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-ch
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// item is one parsed unit of an interleaved stream.
type item struct {
	ch   int // -1 for an RTSP message
	data []byte
}

// readInterleaved parses RTSP messages (header only, no body) and $ frames.
func readInterleaved(r *bufio.Reader) (item, error) {
	c, err := r.Peek(1)
	if err != nil {
		return item{}, err
	}
	if c[0] == '$' {
		var h [4]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return item{}, err
		}
		b := make([]byte, binary.BigEndian.Uint16(h[2:]))
		if _, err := io.ReadFull(r, b); err != nil {
			return item{}, err
		}
		return item{ch: int(h[1]), data: b}, nil
	}
	var msg bytes.Buffer
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return item{}, err
		}
		msg.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	if !strings.HasPrefix(msg.String(), "RTSP/1.0 200 OK\r\n") {
		return item{}, fmt.Errorf("frame boundary lost: %q", msg.String())
	}
	return item{ch: -1, data: msg.Bytes()}, nil
}

func TestInterleavedFramingWithResponses(t *testing.T) {
	pool := NewPool()
	server, client := tcpPair(t)
	w := NewInterleavedWriter(server, InterleavedConfig{QueueLen: 1 << 16})
	h := NewHub(HubConfig{Track: Track{ClockRate: 90000}, Pool: pool})
	h.AddSink(w.Sink(4))

	const packets, responses = 3000, 200
	type result struct {
		frames, rtcp int
		msgs         []string
		err          error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		br := bufio.NewReader(client)
		var lastSeq uint16
		for r.frames < packets || len(r.msgs) < responses {
			it, err := readInterleaved(br)
			if err != nil {
				r.err = err
				break
			}
			switch it.ch {
			case -1:
				r.msgs = append(r.msgs, string(it.data))
			case 4:
				seq := binary.BigEndian.Uint16(it.data[2:])
				if r.frames > 0 && seq != lastSeq+1 {
					r.err = fmt.Errorf("seq %d after %d", seq, lastSeq)
				}
				if idx := int(binary.BigEndian.Uint32(it.data[12:])); idx != r.frames || len(it.data) != 16+idx%700 {
					r.err = fmt.Errorf("frame %d: index %d length %d", r.frames, idx, len(it.data))
				}
				lastSeq = seq
				r.frames++
			case 5:
				r.rtcp++
			default:
				r.err = fmt.Errorf("channel %d", it.ch)
			}
			if r.err != nil {
				break
			}
		}
		res <- r
	}()
	go func() {
		for i := range responses {
			if err := w.WriteMessage(fmt.Appendf(nil, "RTSP/1.0 200 OK\r\nCSeq: %d\r\n\r\n", i)); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := range packets {
		// sizes vary so frames straddle TCP segments and writev batches
		b := mkRTP(1, uint16(i), uint32(i), 4+i%700)
		binary.BigEndian.PutUint32(b[12:], uint32(i))
		if err := h.WriteRTP(b); err != nil {
			t.Fatal(err)
		}
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.frames != packets || len(r.msgs) != responses || r.rtcp != 1 {
		t.Errorf("frames %d msgs %d rtcp %d", r.frames, len(r.msgs), r.rtcp)
	}
	for i, m := range r.msgs {
		if !strings.Contains(m, fmt.Sprintf("CSeq: %d\r\n", i)) {
			t.Fatalf("message %d out of order: %q", i, m)
		}
	}
	h.Close()
	w.Close()
	w.Close()
	if err := w.Err(); err != nil {
		t.Errorf("Err after Close: %v", err)
	}
	if err := w.WriteMessage([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteMessage after Close: %v", err)
	}
	checkNoLeak(t, pool)
}

func TestInterleavedStuckReaderFailsOnlyItself(t *testing.T) {
	pool := NewPool()
	stuckSrv, _ := net.Pipe() // nobody ever reads the other end
	defer stuckSrv.Close()
	stuck := NewInterleavedWriter(stuckSrv, InterleavedConfig{QueueLen: 8, WriteTimeout: 100 * time.Millisecond})
	server, client := tcpPair(t)
	fast := NewInterleavedWriter(server, InterleavedConfig{QueueLen: 4096})
	h := NewHub(HubConfig{Pool: pool})
	h.AddSink(stuck.Sink(0))
	h.AddSink(fast.Sink(2))

	const packets = 2000
	got := make(chan int, 1)
	go func() {
		br := bufio.NewReader(client)
		n := 0
		for n < packets {
			it, err := readInterleaved(br)
			if err != nil {
				break
			}
			if it.ch == 2 {
				n++
			}
		}
		got <- n
	}()
	start := time.Now()
	for i := range packets {
		if err := h.WriteRTP(mkRTP(1, uint16(i), 0, 100)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // a source paced a little, so the fast queue never fills
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hub took %v: blocked by the stuck reader", d)
	}
	if n := <-got; n != packets {
		t.Errorf("fast reader got %d of %d", n, packets)
	}
	select {
	case <-stuck.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("stuck writer did not fail after its write timeout")
	}
	var ne net.Error
	if err := stuck.Err(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("stuck Err = %v, want a timeout", err)
	}
	if err := stuck.WriteMessage([]byte("RTSP/1.0 200 OK\r\n\r\n")); err == nil {
		t.Error("WriteMessage on a failed writer succeeded")
	}
	if st := stuck.Stats(); st.Dropped == 0 || st.Packets+st.Dropped+st.Errors != packets+1 {
		t.Errorf("stuck stats %+v (want every packet+SR accounted for)", st)
	}
	if st := fast.Stats(); st.Dropped != 0 || st.Packets != packets+1 {
		t.Errorf("fast stats %+v", st)
	}
	h.Close()
	stuck.Close()
	fast.Close()
	checkNoLeak(t, pool)
}

func TestInterleavedCloseReleasesQueued(t *testing.T) {
	pool := NewPool()
	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	w := NewInterleavedWriter(srv, InterleavedConfig{QueueLen: 100})
	s := w.Sink(0)
	for range 50 { // the first write blocks in the pipe; the rest stay queued
		s.DeliverRTP(pool.Get(100))
	}
	if err := w.WriteMessage([]byte("RTSP/1.0 200 OK\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	w.Close() // aborts the blocked write through the deadline
	<-w.Done()
	s.DeliverRTCP(pool.Get(10)) // after Close: released at once
	if st := w.Stats(); st.Packets+st.Dropped+st.Errors != 51 {
		t.Errorf("stats %+v: want 51 frames accounted for", st)
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err after Close = %v, want nil", err)
	}
	checkNoLeak(t, pool)
}
