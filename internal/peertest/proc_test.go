package peertest

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRunCapturesOutput(t *testing.T) {
	p := Run(context.Background(), t, "sh", "-c", "echo out; echo err >&2; exit 3")
	err := p.Wait(10 * time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || p.ExitCode() != 3 {
		t.Fatalf("Wait = %v, exit code %d; want exit status 3", err, p.ExitCode())
	}
	if out := p.Output(); !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
		t.Errorf("Output = %q", out)
	}
}

func TestMustSucceed(t *testing.T) {
	out := Run(context.Background(), t, "echo", "hello").MustSucceed(10 * time.Second)
	if out != "hello\n" {
		t.Errorf("output %q", out)
	}
}

func TestWaitForOutput(t *testing.T) {
	p := Run(context.Background(), t, "sh", "-c", "sleep 0.2; echo READY rtsp://127.0.0.1:1234/x; sleep 30")
	m, err := p.WaitForOutput(regexp.MustCompile(`READY (\S+)`), 10*time.Second)
	if err != nil || m[1] != "rtsp://127.0.0.1:1234/x" {
		t.Fatalf("WaitForOutput = %q, %v", m, err)
	}
	if _, err := p.WaitForOutput(regexp.MustCompile(`never`), 200*time.Millisecond); err == nil {
		t.Error("WaitForOutput(never) succeeded")
	}
	p.Kill()
	if _, err := p.WaitForOutput(regexp.MustCompile(`never`), 10*time.Second); err == nil {
		t.Error("WaitForOutput after exit succeeded")
	}
}

// groupGone waits until no process of the group pgid is left.
func groupGone(pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestKillTakesChildren(t *testing.T) {
	p := Run(context.Background(), t, "sh", "-c", "sleep 300 & echo child $!; wait")
	m, err := p.WaitForOutput(regexp.MustCompile(`child (\d+)`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(m[1])
	p.Kill()
	if !groupGone(p.Pid(), 5*time.Second) {
		t.Fatalf("process group %d (child %d) still alive after Kill", p.Pid(), child)
	}
}

func TestWaitTimeoutKills(t *testing.T) {
	p := Run(context.Background(), t, "sleep", "300")
	start := time.Now()
	if err := p.Wait(300 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Wait = %v, want timeout", err)
	}
	if !p.Exited() || time.Since(start) > 10*time.Second {
		t.Fatal("process not killed after Wait timeout")
	}
}

func TestContextCancelKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := Run(ctx, t, "sh", "-c", "sleep 300 & sleep 300")
	cancel()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process still running after context cancel")
	}
	if !groupGone(p.Pid(), 5*time.Second) {
		t.Fatal("children still alive after context cancel")
	}
}

func TestStopGraceful(t *testing.T) {
	p := Run(context.Background(), t, "sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done")
	if _, err := p.WaitForOutput(regexp.MustCompile(`up`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if !strings.Contains(p.Output(), "bye") {
		t.Errorf("no graceful exit: %q", p.Output())
	}
}

// TestCleanupKills checks that a process left running by a (sub)test is
// killed, with its children, when the test ends.
func TestCleanupKills(t *testing.T) {
	var pgid int
	t.Run("leaky", func(t *testing.T) {
		p := Run(context.Background(), t, "sh", "-c", "sleep 300 & sleep 300")
		pgid = p.Pid()
	})
	if !groupGone(pgid, 5*time.Second) {
		t.Fatalf("process group %d survived the subtest", pgid)
	}
}
