package access

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters for new hashes: the OWASP minimum for argon2id (19 MiB, 2 passes, 1 lane),
// chosen so a login costs tens of milliseconds on a small VM rather than the hundreds a 64 MiB
// setting costs; failed attempts are rate-limited on top.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
	// Limits on hashes read from a config, so a typo cannot make one login allocate gigabytes.
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 64
	maxArgonKeyLen    = 128
)

// DummyMemoryKiB is what one dummy check (DummyVerify) allocates: a new argon2id hash's m=.
const DummyMemoryKiB = argonMemoryKiB

// bcryptMemoryKiB rounds up bcrypt's working state (its 4 KiB of S-boxes and key schedule).
const bcryptMemoryKiB = 5

// BcryptCost is the cost of new bcrypt hashes.
const BcryptCost = 10

// PasswordHash is a parsed one-way password hash that can check a password.
type PasswordHash struct {
	kind string // "argon2id" or "bcrypt"
	text string

	// argon2id
	mem     uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// Kind is "argon2id" or "bcrypt".
func (h *PasswordHash) Kind() string { return h.kind }

// String is the hash in the form it was parsed from.
func (h *PasswordHash) String() string { return h.text }

// MemoryKiB is what one check against the hash allocates: argon2id's m=, a few KiB for bcrypt.
func (h *PasswordHash) MemoryKiB() uint32 {
	if h.kind == "argon2id" {
		return h.mem
	}
	return bcryptMemoryKiB
}

// Verify reports whether password matches the hash, in time independent of where they differ.
func (h *PasswordHash) Verify(password string) bool {
	switch h.kind {
	case "argon2id":
		got := argon2.IDKey([]byte(password), h.salt, h.time, h.mem, h.threads, uint32(len(h.key)))
		return subtle.ConstantTimeCompare(got, h.key) == 1
	case "bcrypt":
		return bcrypt.CompareHashAndPassword([]byte(h.text), []byte(password)) == nil
	}
	return false
}

// DummyVerify costs what checking a password against a new argon2id hash costs, for a user that
// does not exist: the answer then takes as long as for a real user, so timing does not tell which
// user names exist.
func DummyVerify(password string) {
	argon2.IDKey([]byte(password), make([]byte, argonSaltLen), argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
}

// ParsePasswordHash reads an argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$key) or a
// bcrypt hash ($2a$/$2b$/$2y$).
func ParsePasswordHash(s string) (*PasswordHash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil || len(s) != 60 {
			return nil, fmt.Errorf("not a valid bcrypt hash (want 60 characters like $2a$10$…)")
		}
		return &PasswordHash{kind: "bcrypt", text: s}, nil
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("only argon2id is accepted among the argon2 variants")
	}
	return nil, errors.New("not an argon2id ($argon2id$…) or bcrypt ($2a$/$2b$/$2y$…) hash; make one with `meshgw passwd`")
}

func parseArgon2id(s string) (*PasswordHash, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 {
		return nil, errors.New("argon2id hash must look like $argon2id$v=19$m=19456,t=2,p=1$SALT$KEY")
	}
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("argon2id version %q is not supported (want v=19)", parts[2])
	}
	h := &PasswordHash{kind: "argon2id", text: s}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nil, fmt.Errorf("argon2id parameters %q are malformed", parts[3])
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("argon2id parameter %s=%q is not a number", k, v)
		}
		switch k {
		case "m":
			h.mem = uint32(n)
		case "t":
			h.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id parallelism %d is over 255", n)
			}
			h.threads = uint8(n)
		default:
			return nil, fmt.Errorf("argon2id parameter %q is unknown", k)
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] {
		return nil, errors.New("argon2id hash needs m=, t= and p=")
	}
	if h.time < 1 || h.time > maxArgonTime || h.threads < 1 || h.mem < 8*uint32(h.threads) || h.mem > maxArgonMemoryKiB {
		return nil, fmt.Errorf("argon2id parameters m=%d,t=%d,p=%d are out of range (m 8·p–%d KiB, t 1–%d, p 1–255)", h.mem, h.time, h.threads, maxArgonMemoryKiB, maxArgonTime)
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, errors.New("argon2id salt must be unpadded base64 of at least 8 bytes")
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > maxArgonKeyLen {
		return nil, fmt.Errorf("argon2id key must be unpadded base64 of 16–%d bytes", maxArgonKeyLen)
	}
	return h, nil
}

// HashArgon2id makes a new argon2id hash of password with a random salt.
func HashArgon2id(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("argon2id salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// HashBcrypt makes a new bcrypt hash of password. bcrypt reads at most 72 bytes of a password.
func HashBcrypt(password string) (string, error) {
	if len(password) > 72 {
		return "", errors.New("bcrypt uses at most 72 bytes of a password; use argon2id for longer ones")
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), BcryptCost)
	if err != nil {
		return "", fmt.Errorf("bcrypt: %w", err)
	}
	return string(b), nil
}

// Digest algorithms, named as in RFC 7616.
const (
	MD5    = "MD5"
	SHA256 = "SHA-256"
)

// DigestHA1 is H(user:realm:password) in hex, what a server must store to check Digest
// responses without the password (RFC 7616 §3.4.2). It is a password equivalent for that realm:
// keep it as secret as the password.
func DigestHA1(alg, user, realm, password string) string {
	return DigestHash(alg, user+":"+realm+":"+password)
}

// DigestHash is the hex hash of s with the Digest algorithm alg (MD5 unless SHA-256).
func DigestHash(alg, s string) string {
	if alg == SHA256 {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// CheckHA1 validates a stored HA1: lower- or upper-case hex of the algorithm's size.
func CheckHA1(alg, s string) error {
	want := 32
	if alg == SHA256 {
		want = 64
	}
	if len(s) != want {
		return fmt.Errorf("a %s HA1 is %d hex digits, got %d", alg, want, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("%s HA1 is not hex", alg)
	}
	return nil
}
