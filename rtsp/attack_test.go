package rtsp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp/access"
)

// refusingHandler serves nothing: the tests below never get past authentication.
type refusingHandler struct{}

func (refusingHandler) OpenRead(context.Context, ConnInfo, string) (ReadStream, error) {
	return nil, Errorf(base.StatusNotFound, "no such route")
}

func (refusingHandler) OpenPublish(context.Context, ConnInfo, string, []byte, []rtp.Track) (PublishStream, error) {
	return nil, Errorf(base.StatusNotFound, "no such route")
}

// attackServer is an RTSPS server with one argon2id user, alice, banning after maxFailures.
func attackServer(t *testing.T, maxFailures int, hashing access.VerifierConfig) (*Server, *x509.CertPool) {
	t.Helper()
	h, err := access.HashArgon2id("wonderland")
	if err != nil {
		t.Fatal(err)
	}
	u := &access.User{Name: "alice"}
	if u.Password, err = access.ParsePasswordHash(h); err != nil {
		t.Fatal(err)
	}
	all, _ := access.ParsePattern("*")
	u.Read = access.Patterns{all}
	tlsCfg, roots := peertest.SelfSignedTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerConfig{
		TLSListener: ln, TLSConfig: tlsCfg, Handler: refusingHandler{},
		Auth:    &access.Policy{Enabled: true, Realm: "test", Users: map[string]*access.User{"alice": u}},
		Bans:    access.NewBans(access.BanConfig{MaxFailures: maxFailures, Window: time.Minute, BanTime: time.Minute}, nil),
		Hashing: hashing,
		Limits:  Limits{MaxUnauthConns: 1024, MaxUnauthConnsPerAddress: 128},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	return s, roots
}

// attackResult is what a login flood got back: statuses per client address, and the largest heap
// (HeapInuse) seen above the heap before the flood.
type attackResult struct {
	status     map[string]map[int]int
	heapGrowth uint64
}

// attack opens n RTSPS connections spread over the given local addresses, completes every TLS
// handshake, then sends one DESCRIBE with wrong Basic credentials for user on each at once, as
// the flood in issue 17 did, and reads the answers.
func attack(t *testing.T, s *Server, roots *x509.CertPool, locals []string, n int, user string) attackResult {
	t.Helper()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base0 := ms.HeapInuse
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var top uint64
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapInuse)
			select {
			case <-stop:
				peak <- top
				return
			case <-tick.C:
			}
		}
	}()

	addr := s.TLSAddr().String()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":guess"))
	req := fmt.Sprintf("DESCRIBE rtsps://%s/cam RTSP/1.0\r\nCSeq: 1\r\nAuthorization: %s\r\n\r\n", addr, auth)
	type answer struct {
		local  string
		status int
		err    error
	}
	answers := make(chan answer, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		local := locals[i%len(locals)]
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
			nc, err := d.Dial("tcp", addr)
			if err != nil {
				ready.Done()
				answers <- answer{local, 0, err}
				return
			}
			defer nc.Close()
			tc := tls.Client(nc, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
			_ = tc.SetDeadline(time.Now().Add(60 * time.Second))
			err = tc.Handshake()
			ready.Done()
			if err != nil {
				answers <- answer{local, 0, err}
				return
			}
			<-start
			if _, err := tc.Write([]byte(req)); err != nil {
				answers <- answer{local, 0, err}
				return
			}
			var res base.Response
			if err := res.Unmarshal(bufio.NewReader(tc)); err != nil {
				answers <- answer{local, 0, err}
				return
			}
			answers <- answer{local, int(res.StatusCode), nil}
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	close(stop)
	r := attackResult{status: map[string]map[int]int{}}
	if top := <-peak; top > base0 {
		r.heapGrowth = top - base0
	}
	close(answers)
	for a := range answers {
		if a.err != nil {
			t.Errorf("client from %s: %v", a.local, a.err)
			continue
		}
		if r.status[a.local] == nil {
			r.status[a.local] = map[int]int{}
		}
		r.status[a.local][a.status]++
	}
	return r
}

// TestLoginFlood reproduces issue 17's attack: 48 concurrent wrong Basic logins over RTSPS, from one
// address and from several, against an argon2id user and against an unknown user (the dummy
// check). At most max_failures guesses per address may be verified, the rest are refused (403
// once the address's failed and pending attempts reach max_failures, 503 when no verifier slot
// frees in time), and the heap grows by at most the verifier slots' hashing memory.
func TestLoginFlood(t *testing.T) {
	const maxFailures, n, slots = 5, 48, 2
	for _, c := range []struct {
		name   string
		user   string
		locals []string
	}{
		{"one address", "alice", []string{"127.0.0.1"}},
		{"four addresses", "alice", []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}},
		{"unknown user", "mallory", []string{"127.0.0.6", "127.0.0.7"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, roots := attackServer(t, maxFailures, access.VerifierConfig{Slots: slots, Wait: 30 * time.Second})
			r := attack(t, s, roots, c.locals, n, c.user)
			verified := 0
			for local, st := range r.status {
				if st[401] > maxFailures {
					t.Errorf("%s: %d guesses answered 401 (verified), want at most %d", local, st[401], maxFailures)
				}
				if st[401]+st[403]+st[503] != n/len(c.locals) {
					t.Errorf("%s: statuses %v, want only 401, 403 and 503 for its %d logins", local, st, n/len(c.locals))
				}
				verified += st[401]
			}
			if runs := s.verifier.Runs(); runs != int64(verified) || runs > int64(maxFailures*len(c.locals)) || runs == 0 {
				t.Errorf("%d password checks ran for %d answers 401; want as many, between 1 and %d", runs, verified, maxFailures*len(c.locals))
			}
			// Each check holds the hash's whole memory while it runs; with GOGC=100 the heap may
			// grow to twice what was live at the last collection before the next one, plus the
			// hashes that start meanwhile, so the bound is 4 × slots × m. Before the slots, 48
			// concurrent checks grew the heap by ≈ 900 MiB.
			limit := uint64(4*slots*access.DummyMemoryKiB*1024 + 32<<20)
			t.Logf("statuses %v, %d checks run, heap growth %.1f MiB (bound %.1f MiB)", r.status, s.verifier.Runs(),
				float64(r.heapGrowth)/(1<<20), float64(limit)/(1<<20))
			if r.heapGrowth > limit {
				t.Errorf("heap grew by %.1f MiB during the flood, want at most %.1f MiB", float64(r.heapGrowth)/(1<<20), float64(limit)/(1<<20))
			}
		})
	}
}

// rtspsRequest sends one DESCRIBE with Basic credentials over a new RTSPS connection and returns
// the response and, when checkClose, whether the server then closed the connection (it waits for
// that up to the server's read_timeout).
func rtspsRequest(t *testing.T, s *Server, roots *x509.CertPool, user, password string, checkClose bool) (*base.Response, bool) {
	t.Helper()
	addr := s.TLSAddr().String()
	tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(30 * time.Second))
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	if _, err := fmt.Fprintf(tc, "DESCRIBE rtsps://%s/cam RTSP/1.0\r\nCSeq: 7\r\nAuthorization: %s\r\n\r\n", addr, auth); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	var res base.Response
	if err := res.Unmarshal(br); err != nil {
		t.Fatal(err)
	}
	if !checkClose {
		return &res, false
	}
	_, err = br.ReadByte()
	return &res, err != nil
}

// TestLoginBusy: when every verifier slot stays taken past the wait, a login is answered 503 with
// Retry-After at once, no hash runs, nothing counts toward the ban, and the connection is closed.
func TestLoginBusy(t *testing.T) {
	s, roots := attackServer(t, 1, access.VerifierConfig{Slots: 1, Wait: 50 * time.Millisecond})
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() { done <- s.verifier.Run(context.Background(), func() { close(held); <-release }) }()
	<-held
	res, closed := rtspsRequest(t, s, roots, "alice", "wonderland", true)
	if res.StatusCode != base.StatusServiceUnavailable || res.Header["Retry-After"] == nil || res.Header["CSeq"][0] != "7" {
		t.Errorf("saturated verifier: %d %v, want 503 with Retry-After", res.StatusCode, res.Header)
	}
	if !closed {
		t.Error("connection left open after 503")
	}
	if n := s.verifier.Runs(); n != 0 {
		t.Errorf("%d hashes ran for a refused login", n)
	}
	res, _ = rtspsRequest(t, s, roots, "mallory", "x", false)
	if res.StatusCode != base.StatusServiceUnavailable {
		t.Errorf("unknown user, saturated verifier: %d, want 503", res.StatusCode)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// with max_failures 1, a counted refusal would have banned the address: the right password
	// gets through authentication (to the handler's 404)
	if res, _ := rtspsRequest(t, s, roots, "alice", "wonderland", false); res.StatusCode != base.StatusNotFound {
		t.Errorf("right password after busy refusals: %d, want the handler's 404", res.StatusCode)
	}
	if res, _ := rtspsRequest(t, s, roots, "alice", "wrong", false); res.StatusCode != base.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", res.StatusCode)
	}
	if res, closed := rtspsRequest(t, s, roots, "alice", "wonderland", true); res.StatusCode != base.StatusForbidden || !closed {
		t.Errorf("after max_failures: %d closed=%v, want 403 and a close", res.StatusCode, closed)
	}
	if n := s.verifier.Runs(); n != 2 {
		t.Errorf("%d hashes ran, want 2", n)
	}
}
