package identity

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mintDir mints a trust domain in a fresh directory.
func mintDir(t *testing.T, td string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := Mint(dir, td, names...); err != nil {
		t.Fatalf("Mint(%q, %v): %v", td, names, err)
	}
	return dir
}
