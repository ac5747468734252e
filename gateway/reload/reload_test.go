package reload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/internal/peertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// target records the configs a reload applied.
type target struct {
	mu   sync.Mutex
	got  []*config.Config
	fail error
	ch   chan struct{}
}

func newTarget() *target { return &target{ch: make(chan struct{}, 16)} }

func (t *target) Reload(_ context.Context, cfg *config.Config) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail != nil {
		return t.fail
	}
	t.got = append(t.got, cfg)
	t.ch <- struct{}{}
	return nil
}

func (t *target) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.got)
}

const base = "routes:\n  a: {source: demo}\n"

func setup(t *testing.T, content string) (string, *target, *Reloader, *peertest.LogBuffer) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "meshgw.yaml")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	cur, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	tg := newTarget()
	logs := &peertest.LogBuffer{}
	r := New(Config{File: file, Current: cur, Target: tg, Logger: logs.Logger(), Debounce: 100 * time.Millisecond})
	t.Cleanup(func() { _ = r.Close() })
	return file, tg, r, logs
}

// replace writes content the way editors save: a new file renamed over the old one.
func replace(t *testing.T, file, content string) {
	t.Helper()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
}

func waitApplied(t *testing.T, tg *target, what string) {
	t.Helper()
	select {
	case <-tg.ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no reload within 5 s", what)
	}
}

func TestReloadApplies(t *testing.T) {
	file, tg, r, _ := setup(t, base)
	replace(t, file, base+"  b: {source: demo}\n")
	if err := r.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tg.count() != 1 || len(tg.got[0].Routes) != 2 {
		t.Fatalf("applied %d configs, want 1 with 2 routes", tg.count())
	}
}

func TestReloadInvalidKeepsRunning(t *testing.T) {
	file, tg, r, logs := setup(t, base)
	replace(t, file, base+"  b: {source: ftp://x}\n  c: {max_readers: -1}\n")
	err := r.Reload(context.Background())
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if tg.count() != 0 {
		t.Fatal("an invalid config reached the target")
	}
	out := logs.String()
	for _, want := range []string{file + ":3:", file + ":4:", "config reload refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestReloadTargetRefuses(t *testing.T) {
	_, tg, r, _ := setup(t, base)
	tg.fail = errors.New("no")
	if err := r.Reload(context.Background()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

// An editor's save (write a temporary file, rename it over the old one) is one reload, after
// the debounce, however many events it makes; a save that changes nothing is none.
func TestWatchRenameDebounced(t *testing.T) {
	file, tg, r, _ := setup(t, base)
	if err := r.Watch(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		replace(t, file, base+"  b: {source: demo}\n"+strings.Repeat("#\n", i))
		time.Sleep(20 * time.Millisecond)
	}
	waitApplied(t, tg, "rename")
	time.Sleep(400 * time.Millisecond)
	if n := tg.count(); n != 1 {
		t.Fatalf("%d reloads for one burst of saves, want 1", n)
	}
	replace(t, file, base+"  b: {source: demo}\n#\n#\n") // the same content again
	time.Sleep(500 * time.Millisecond)
	if n := tg.count(); n != 1 {
		t.Fatalf("%d reloads after saving the same content, want 1", n)
	}
	// and a write in place (no rename) is seen too
	if err := os.WriteFile(file, []byte(base+"  c: {source: demo}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, tg, "write in place")
}

func TestWatchOff(t *testing.T) {
	file, tg, r, _ := setup(t, "watch_config: false\n"+base)
	if err := r.Watch(); err != nil {
		t.Fatal(err)
	}
	replace(t, file, "watch_config: false\n"+base+"  b: {source: demo}\n")
	time.Sleep(600 * time.Millisecond)
	if tg.count() != 0 {
		t.Fatal("reloaded on a change with watch_config: false")
	}
	// a requested reload still works, and turning the watch on takes effect with it
	replace(t, file, base)
	if err := r.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, tg, "request")
	replace(t, file, base+"  d: {source: demo}\n")
	waitApplied(t, tg, "watch turned on")
}
