package roq

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ClientConfig configures Dial.
type ClientConfig struct {
	// TLS is the client's TLS config; nil verifies the server against the system roots. Its
	// NextProtos are replaced by ALPNs.
	TLS  *tls.Config
	Mode Mode
	// Timeout bounds the handshake and the signalling exchange (default 10 s).
	Timeout time.Duration
}

// Client is one RoQ session pulled from a server: the connection, its control stream and the
// server's answer.
type Client struct {
	conn   *quic.Conn
	ctl    *quic.Stream
	Answer Answer
	byFlow map[uint64]FlowRef

	tr  *quic.Transport
	udp *net.UDPConn

	sendMu  sync.Mutex
	scratch []byte
	streams map[uint64]*quic.SendStream // stream mode: one ordered stream per flow
}

// FlowRef is what a flow ID carries: a track's RTP or RTCP.
type FlowRef struct {
	Track int
	RTCP  bool
}

// ParseURL splits quic://host:port/path (or roq://) into the address to dial and the path.
func ParseURL(raw string) (addr, path string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("roq: url %q: %w", raw, err)
	}
	if u.Scheme != "quic" && u.Scheme != "roq" {
		return "", "", fmt.Errorf("roq: url %q: scheme must be quic:// or roq://", raw)
	}
	if u.Port() == "" || u.Hostname() == "" {
		return "", "", fmt.Errorf("roq: url %q: host and port are required", raw)
	}
	path = u.EscapedPath()
	if err := checkPath(path); err != nil {
		return "", "", fmt.Errorf("roq: url %q: %w", raw, err)
	}
	return net.JoinHostPort(u.Hostname(), u.Port()), path, nil
}

// QUICConfig is the QUIC configuration both ends of meshgw's RoQ use: datagrams on, room for
// a stream per frame.
func QUICConfig() *quic.Config {
	return &quic.Config{
		EnableDatagrams:       true,
		MaxIncomingUniStreams: 1000,
		MaxIdleTimeout:        15 * time.Second,
		KeepAlivePeriod:       5 * time.Second,
	}
}

// Dial connects to a RoQ server and asks for the route at rawURL (quic://host:port/path).
// A refusal is an error carrying the server's code and reason.
func Dial(ctx context.Context, rawURL string, cfg ClientConfig) (*Client, error) {
	return dial(ctx, rawURL, nil, cfg)
}

// DialPush connects to a RoQ server to publish into the route at rawURL: sdp describes the
// tracks; SendRTP and SendRTCP carry them.
func DialPush(ctx context.Context, rawURL string, sdp []byte, cfg ClientConfig) (*Client, error) {
	if len(sdp) == 0 || len(sdp) > maxSDP {
		return nil, fmt.Errorf("roq: push needs a session description of 1-%d bytes", maxSDP)
	}
	return dial(ctx, rawURL, sdp, cfg)
}

func dial(ctx context.Context, rawURL string, sdp []byte, cfg ClientConfig) (*Client, error) {
	addr, path, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tc := &tls.Config{}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	tc.NextProtos = ALPNs
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("roq: %w", err)
	}
	// The client owns its socket and transport, so Close ends every goroutine of the session
	// before it returns (quic.DialAddr's transport closes some time after its connection).
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, fmt.Errorf("roq: %w", err)
	}
	tr := &quic.Transport{Conn: udp}
	conn, err := tr.Dial(dctx, raddr, tc, QUICConfig())
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("roq: dial %s: %w", addr, err)
	}
	c, err := start(dctx, conn, Request{Path: path, Mode: cfg.Mode, SDP: sdp})
	if err != nil {
		_ = conn.CloseWithError(CodeNoError, "")
		_ = tr.Close()
		_ = udp.Close()
		return nil, err
	}
	c.tr, c.udp = tr, udp
	return c, nil
}

func start(ctx context.Context, conn *quic.Conn, req Request) (*Client, error) {
	ctl, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("roq: open control stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = ctl.SetDeadline(dl)
	}
	if _, err := ctl.Write(AppendRequest(nil, req)); err != nil {
		return nil, fmt.Errorf("roq: request: %w", err)
	}
	a, err := ReadAnswer(bufio.NewReader(ctl))
	if err != nil {
		return nil, err
	}
	if a.Code != 200 {
		return nil, fmt.Errorf("roq: %s refused %s: %d %s", conn.RemoteAddr(), req.Path, a.Code, a.Reason)
	}
	_ = ctl.SetDeadline(time.Time{})
	c := &Client{conn: conn, ctl: ctl, Answer: a, byFlow: map[uint64]FlowRef{}}
	for i, f := range a.Flows {
		c.byFlow[f.RTP] = FlowRef{Track: i}
		c.byFlow[f.RTCP] = FlowRef{Track: i, RTCP: true}
	}
	return c, nil
}

// Flow says what a received flow ID carries.
func (c *Client) Flow(id uint64) (FlowRef, bool) {
	r, ok := c.byFlow[id]
	return r, ok
}

// Conn is the client's QUIC connection (for Receive and its stats).
func (c *Client) Conn() *quic.Conn { return c.conn }

// Run receives the session's packets into h until ctx ends, the server ends the session or
// the connection fails.
func (c *Client) Run(ctx context.Context, h PacketHandler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// the server closing the control stream ends the session
		var b [1]byte
		_, _ = c.ctl.Read(b[:])
		cancel()
	}()
	err := Receive(ctx, c.conn, h)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// SendRTCP sends an RTCP packet of track to the server on the track's RTCP flow: in datagram
// mode a datagram (a stream of its own when too large), in stream mode on the flow's one
// stream.
func (c *Client) SendRTCP(track int, pkt []byte) error {
	if track < 0 || track >= len(c.Answer.Flows) {
		return fmt.Errorf("roq: no track %d", track)
	}
	return c.send(c.Answer.Flows[track].RTCP, pkt)
}

// SendRTP sends a publisher's RTP packet of track on the track's RTP flow, as SendRTCP does.
func (c *Client) SendRTP(track int, pkt []byte) error {
	if track < 0 || track >= len(c.Answer.Flows) {
		return fmt.Errorf("roq: no track %d", track)
	}
	return c.send(c.Answer.Flows[track].RTP, pkt)
}

func (c *Client) send(flow uint64, pkt []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.Answer.Mode == Stream {
		// One stream per flow keeps a publisher's packets in order: the receiver reads each
		// stream on its own goroutine, so packets on separate streams may overtake each other.
		s := c.streams[flow]
		c.scratch = c.scratch[:0]
		if s == nil {
			var err error
			if s, err = c.conn.OpenUniStream(); err != nil {
				return err
			}
			if c.streams == nil {
				c.streams = map[uint64]*quic.SendStream{}
			}
			c.streams[flow] = s
			c.scratch = AppendStreamHeader(c.scratch, flow)
		}
		c.scratch = AppendStreamPacket(c.scratch, pkt)
		if _, err := s.Write(c.scratch); err != nil {
			delete(c.streams, flow)
			return err
		}
		return nil
	}
	if DatagramsOK(c.conn) {
		c.scratch = AppendDatagram(c.scratch[:0], flow, pkt)
		err := c.conn.SendDatagram(c.scratch)
		if err == nil || !tooLarge(err) {
			return err
		}
	}
	s, err := c.conn.OpenUniStream()
	if err != nil {
		return err
	}
	c.scratch, err = writeOwnStream(s, c.scratch, flow, pkt)
	return err
}

// Close ends the session and closes the client's socket.
func (c *Client) Close() error {
	err := c.conn.CloseWithError(CodeNoError, "")
	if terr := c.tr.Close(); err == nil {
		err = terr
	}
	_ = c.udp.Close()
	return err
}
