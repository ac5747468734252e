package peertest

import (
	"fmt"
	"os"
	"testing"
)

// testMedia is this test binary's clip cache, set up in TestMain.  Test
// packages that import peertest do the same with their own TestMain.
var testMedia *Media

func TestMain(m *testing.M) {
	media, err := NewMedia("")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	testMedia = media
	code := m.Run()
	media.Close()
	os.Exit(code)
}
