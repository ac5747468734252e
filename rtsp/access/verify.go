package access

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrBusy is returned when no verifier slot came free within the wait: the check did not run and
// cost nothing, and the client should be told to come back later.
var ErrBusy = errors.New("password verification busy")

// DefaultHashWait is how long a password check waits for a slot unless configured otherwise.
const DefaultHashWait = 2 * time.Second

// VerifierConfig sizes a Verifier.
type VerifierConfig struct {
	// Slots is how many password hashes may be computed at once; 0 means runtime.NumCPU().
	// Memory for hashing is at most Slots × the largest argon2id m= among the hashes checked
	// (the dummy check for unknown users costs DummyMemoryKiB); bcrypt needs about 4 KiB.
	Slots int
	// Wait bounds how long a check waits for a slot before ErrBusy; 0 means DefaultHashWait.
	Wait time.Duration
}

// Verifier runs password checks in a fixed number of slots. A slow hash (argon2id allocates its
// whole memory parameter per call) must not run once per concurrent login: 48 at once took a
// gateway from 30 MB to 950 MB. Slots bound the memory and CPU spent; the bounded wait turns a
// flood into fast refusals that cost no hashing.
type Verifier struct {
	slots chan struct{}
	wait  time.Duration
	// runs counts hashes computed, real and dummy (tests and metrics).
	runs atomic.Int64
}

// NewVerifier makes a verifier with cfg's slots and wait.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.NumCPU()
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultHashWait
	}
	return &Verifier{slots: make(chan struct{}, cfg.Slots), wait: cfg.Wait}
}

// Slots is the number of checks that may run at once.
func (v *Verifier) Slots() int { return cap(v.slots) }

// Wait is how long a check waits for a slot before ErrBusy.
func (v *Verifier) Wait() time.Duration { return v.wait }

// Runs is the number of hashes computed so far, real and dummy.
func (v *Verifier) Runs() int64 { return v.runs.Load() }

// Verify checks password against h in a slot. h nil runs the dummy check (an unknown user, or one
// without a password hash) and reports false, so the answer takes as long as for a real user. It
// returns ErrBusy, or ctx's error, when no slot came free in time; the hash was then not computed.
func (v *Verifier) Verify(ctx context.Context, h *PasswordHash, password string) (bool, error) {
	ok := false
	err := v.Run(ctx, func() {
		v.runs.Add(1)
		if h == nil {
			DummyVerify(password)
			return
		}
		ok = h.Verify(password)
	})
	return ok, err
}

// Run runs fn in a slot, for work as costly as a password check that must share the bound (another
// front door's logins). It returns ErrBusy, or ctx's error, without running fn when no slot came
// free within the wait.
func (v *Verifier) Run(ctx context.Context, fn func()) error {
	if err := v.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-v.slots }()
	fn()
	return nil
}

func (v *Verifier) acquire(ctx context.Context) error {
	select {
	case v.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(v.wait)
	defer t.Stop()
	select {
	case v.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}
