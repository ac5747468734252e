package access

import (
	"testing"
)

func FuzzParsePasswordHash(f *testing.F) {
	for _, s := range []string{
		"$argon2id$v=19$m=19456,t=2,p=1$eRFZFbwyfiJUGFYF4ACTOQ$VCv7gGY6L51CIRTLUr5/p3UqvxItbMbwByF6VouIv3o",
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", "$argon2id$", "$2b$", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParsePasswordHash(s)
		if err != nil {
			return
		}
		if h.String() != s {
			t.Fatalf("String() = %q, parsed from %q", h.String(), s)
		}
		// Verify runs only on hashes cheap enough for a fuzz loop.
		if h.Kind() == "argon2id" && h.mem <= 64 && h.time <= 2 {
			h.Verify("x")
		}
	})
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"cam1", "cam/*", "~^cam/[0-9]+$", "*", "~(", "[", "a\\"} {
		f.Add(s, "cam/1")
	}
	f.Fuzz(func(t *testing.T, pat, route string) {
		p, err := ParsePattern(pat)
		if err != nil {
			return
		}
		p.Match(route)
		if p.String() != pat {
			t.Fatalf("String() = %q, parsed from %q", p.String(), pat)
		}
	})
}
