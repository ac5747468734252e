package peertest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TailBytes is how much of a process's output is logged when it fails.
const TailBytes = 4096

// maxOutput bounds the memory kept per process; older output is dropped.
const maxOutput = 32 << 20

// output is a goroutine-safe append-only buffer that wakes waiters on every
// write.
type output struct {
	mu      sync.Mutex
	buf     []byte
	dropped int
	changed chan struct{}
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, b...)
	if len(o.buf) > maxOutput {
		n := len(o.buf) - maxOutput/2
		o.dropped += n
		o.buf = append(o.buf[:0], o.buf[n:]...)
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(b), nil
}

// snapshot returns the current contents and a channel closed on the next write.
func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf), o.changed
}

// Proc is a running (or finished) peer process started by Run or Start.
// Its stdout and stderr are captured together in memory.  The process runs
// in its own process group; the whole group is killed when the test ends.
type Proc struct {
	t    testing.TB
	cmd  *exec.Cmd
	desc string
	out  *output
	done chan struct{}
	err  error // valid once done is closed

	mu         sync.Mutex
	tailLogged bool
}

// Run starts name with args under ctx (cancelling ctx kills the process
// group) and returns at once.  It fails the test if the program cannot be
// started.  The process group is killed in t.Cleanup if it is still running.
func Run(ctx context.Context, t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return Start(t, exec.CommandContext(ctx, name, args...))
}

// Start starts a prepared command the way Run does.  Stdout and Stderr must
// be unset (they are captured); Stdin, Env, Dir etc. may be set by the
// caller.  If cmd was made with exec.CommandContext, cancelling the context
// kills the whole process group.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	if cmd.Stdout != nil || cmd.Stderr != nil {
		t.Fatalf("peertest.Start: %s: Stdout/Stderr must be nil (output is captured)", cmd.Path)
	}
	p := &Proc{t: t, cmd: cmd, desc: describe(cmd.Args), out: newOutput(), done: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if cmd.Cancel != nil { // made by exec.CommandContext
		cmd.Cancel = func() error { return p.killGroup(syscall.SIGKILL) }
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.desc, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.killGroup(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Errorf("%s: still not reaped 15 s after SIGKILL", p.desc)
		}
		if t.Failed() {
			p.logTail("test failed")
		}
	})
	return p
}

func describe(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

// String returns the (shortened) command line.
func (p *Proc) String() string { return p.desc }

// Pid returns the process id, which is also its process group id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// killGroup signals the process group.  The group id stays valid (and is
// not reused) while any member lives, so this also reaches orphaned
// children after the leader has exited.
func (p *Proc) killGroup(sig syscall.Signal) error {
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Signal sends sig to the whole process group.
func (p *Proc) Signal(sig syscall.Signal) error { return p.killGroup(sig) }

// Kill kills the process group with SIGKILL and waits until the process
// has been reaped.
func (p *Proc) Kill() {
	_ = p.killGroup(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM to the process group, waits up to grace for the
// process to exit, then kills the group.  It returns the exit error (nil for
// a clean exit; killed processes report their signal).
func (p *Proc) Stop(grace time.Duration) error {
	_ = p.killGroup(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
	_ = p.killGroup(syscall.SIGKILL) // leftover children
	return p.err
}

// Done returns a channel that is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the exit code, or -1 if the process is still running or
// was killed by a signal.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Wait waits up to timeout for the process to exit and returns its exit
// error.  On timeout the process group is killed and an error is returned.
// When the result is an error, the last TailBytes of output are logged.
func (p *Proc) Wait(timeout time.Duration) error {
	p.t.Helper()
	err := p.wait(timeout)
	if err != nil {
		p.logTail(err.Error())
	}
	return err
}

// wait waits up to timeout for the exit and returns its error, killing the process group on
// timeout.
func (p *Proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s: timed out after %v (killed)", p.desc, timeout)
	}
}

// MustSucceed waits like Wait and fails the test unless the process exits
// with status 0.  It returns the captured output.
func (p *Proc) MustSucceed(timeout time.Duration) string {
	p.t.Helper()
	if err := p.Wait(timeout); err != nil {
		p.t.Fatalf("%s: %v", p.desc, err)
	}
	return p.Output()
}

// MustPlayGst waits for a gst-launch-1.0 reader and fails the test unless it played through to
// EOS as GstPlayedThrough judges it. It returns the captured output.
func (p *Proc) MustPlayGst(timeout time.Duration) string {
	p.t.Helper()
	err := p.wait(timeout)
	out := p.Output()
	if verr := GstPlayedThrough(out, err); verr != nil {
		p.logTail(verr.Error())
		p.t.Fatalf("%s: %v", p.desc, verr)
	} else if err != nil {
		p.t.Logf("%s: reached EOS; exit %v came from rtspsrc's shutdown race after EOS", p.desc, err)
	}
	return out
}

// Output returns everything the process has written so far (stdout and
// stderr interleaved).
func (p *Proc) Output() string {
	s, _ := p.out.snapshot()
	return s
}

// Tail returns the last n bytes of the output.
func (p *Proc) Tail(n int) string {
	s := p.Output()
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

func (p *Proc) logTail(why string) {
	p.mu.Lock()
	if p.tailLogged {
		p.mu.Unlock()
		return
	}
	p.tailLogged = true
	p.mu.Unlock()
	p.t.Logf("%s (%s); last output:\n%s", p.desc, why, p.Tail(TailBytes))
}

// WaitForOutput waits until the output matches re and returns the
// submatches of the first match.  It returns an error if the process exits
// without producing a match or the timeout expires.
func (p *Proc) WaitForOutput(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s, changed := p.out.snapshot()
		if m := re.FindStringSubmatch(s); m != nil {
			return m, nil
		}
		select {
		case <-changed:
		case <-p.done:
			// The copy goroutines finish before Wait returns, so the
			// output is complete now; check one last time.
			if m := re.FindStringSubmatch(p.Output()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("%s exited (%v) before printing %q", p.desc, p.err, re)
		case <-deadline.C:
			return nil, fmt.Errorf("%s: no %q within %v", p.desc, re, timeout)
		}
	}
}
