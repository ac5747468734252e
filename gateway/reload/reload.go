package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshgw/meshgw/gateway/config"
)

// Target is what a reload applies a new config to: a gateway (gateway.Gateway.Reload) or a
// node process (gateway.NodeProcess.Reload).
type Target interface {
	Reload(ctx context.Context, cfg *config.Config) error
}

// DefaultDebounce is how long the file must stay quiet after a change before it is reloaded.
// An editor's save is several events (a temporary file written, renamed over the old one, its
// mode set); a reload between them would read half a save or none.
const DefaultDebounce = 300 * time.Millisecond

// Config configures a Reloader.
type Config struct {
	// File is the config file to load.
	File string
	// Current is the config running now, loaded from File at start.
	Current *config.Config
	// Target receives every valid new config.
	Target Target
	// Prepare, when set, adjusts a freshly loaded config before it is applied, as the command
	// adjusted the first one (e.g. meshgw node's -name and -data-address flags).
	Prepare func(*config.Config) error
	// Applied, when set, is called with each config the target accepted (the command sets its
	// log level from it).
	Applied func(*config.Config)
	// Debounce overrides DefaultDebounce.
	Debounce time.Duration
	Logger   *slog.Logger
}

// Reloader loads the config file again and hands it to its target: on Reload (SIGHUP, the API's
// reload action) and, while the config in force says watch_config, whenever the file changes.
type Reloader struct {
	cfg Config
	log *slog.Logger

	// mu serialises reloads: a signal, a file change and an API call may come at once.
	mu      sync.Mutex
	current *config.Config
	// last is the content of the file last loaded, so a watch event that did not change it (a
	// touch, an editor's backup file next to it) costs no reload.
	last []byte

	watcher *fsnotify.Watcher
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New makes a reloader of cfg.File; Watch starts watching it.
func New(cfg Config) *Reloader {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	r := &Reloader{cfg: cfg, log: cfg.Logger, current: cfg.Current, stop: make(chan struct{})}
	r.last, _ = os.ReadFile(cfg.File)
	return r
}

// ErrInvalid wraps the errors of a file that was refused: the running config stays.
var ErrInvalid = errors.New("config refused; the running config stays")

// Reload loads the file, validates it and applies it. An invalid file is refused: each of its
// problems is logged as FILE:LINE: message, the error returned wraps ErrInvalid, and the running
// config stays. It has the shape of an API's reload action, func(context.Context) error.
func (r *Reloader) Reload(ctx context.Context) error {
	data, err := os.ReadFile(r.cfg.File)
	if err != nil {
		r.log.Error("config reload: cannot read the file; the running config stays", "file", r.cfg.File, "err", err)
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return r.apply(ctx, data, "request")
}

// apply parses data and hands it to the target; why says what asked for it, for the log.
func (r *Reloader) apply(ctx context.Context, data []byte, why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = data
	r.log.Info("config reload", "file", r.cfg.File, "by", why)
	cfg, err := config.Parse(r.cfg.File, data)
	if err == nil && r.cfg.Prepare != nil {
		err = r.cfg.Prepare(cfg)
	}
	if err != nil {
		var list *config.Errors
		if errors.As(err, &list) {
			for _, e := range list.List {
				r.log.Error("config reload: invalid config", "error", e.Error())
			}
		} else {
			r.log.Error("config reload: invalid config", "error", err.Error())
		}
		r.log.Error("config reload refused; the running config stays", "file", r.cfg.File)
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := r.cfg.Target.Reload(ctx, cfg); err != nil {
		r.log.Error("config reload refused; the running config stays", "file", r.cfg.File, "err", err)
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	r.current = cfg
	if r.cfg.Applied != nil {
		r.cfg.Applied(cfg)
	}
	return nil
}

// Watch starts watching the file's directory, not the file: editors and config managers
// replace a file by renaming a new one over it (and Kubernetes swaps a symlink), which ends a
// watch on the old inode. Every event in the directory, after the debounce, reads the file
// again; a content that differs from the last one loaded is reloaded, as long as the config in
// force sets watch_config. Close stops it.
func (r *Reloader) Watch() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	dir := filepath.Dir(r.cfg.File)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch config directory %s: %w", dir, err)
	}
	r.watcher = w
	r.wg.Add(1)
	go r.watchLoop(w)
	return nil
}

func (r *Reloader) watchLoop(w *fsnotify.Watcher) {
	defer r.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			_ = ev // which name changed does not matter: the file itself is read again
			t.Reset(r.cfg.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			r.log.Warn("config watch", "file", r.cfg.File, "err", err)
		case <-t.C:
			r.changed()
		}
	}
}

// changed reloads the file if its content changed and the config in force watches it.
func (r *Reloader) changed() {
	data, err := os.ReadFile(r.cfg.File)
	if err != nil {
		// between an editor's delete and its rename; the rename's event comes next
		return
	}
	r.mu.Lock()
	same := bytes.Equal(data, r.last)
	watch := r.current == nil || r.current.WatchConfig
	r.mu.Unlock()
	if same || !watch {
		return
	}
	_ = r.apply(context.Background(), data, "file change") // logged
}

// Close stops the watch and waits for a reload under way.
func (r *Reloader) Close() error {
	if r.watcher == nil {
		return nil
	}
	close(r.stop)
	err := r.watcher.Close()
	r.wg.Wait()
	r.watcher = nil
	return err
}
