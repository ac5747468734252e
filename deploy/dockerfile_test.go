package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// stage is one FROM ... section of a Dockerfile.
type stage struct {
	name  string // the AS name, lower-cased as BuildKit treats it
	base  string
	cmds  []*parser.Node
	index int
}

// stages parses a Dockerfile with BuildKit's parser (the one `docker build`
// uses) and groups its instructions by stage.
func stages(src []byte) ([]stage, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	var out []stage
	for _, n := range res.AST.Children {
		// The parser keeps the instruction as written; Dockerfiles are
		// case-insensitive there.
		n.Value = strings.ToLower(n.Value)
		if n.Value == "from" {
			s := stage{index: len(out)}
			args := nodeArgs(n)
			if len(args) > 0 {
				s.base = args[0]
			}
			if len(args) == 3 && strings.EqualFold(args[1], "as") {
				s.name = strings.ToLower(args[2])
			}
			out = append(out, s)
			continue
		}
		if len(out) == 0 {
			continue // ARG before the first FROM
		}
		out[len(out)-1].cmds = append(out[len(out)-1].cmds, n)
	}
	return out, nil
}

// nodeArgs returns an instruction's arguments: one string per JSON array
// element or whitespace-separated word, or the whole shell-form command.
func nodeArgs(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// flag returns the value of an instruction flag such as --from.
func flag(n *parser.Node, name string) (string, bool) {
	for _, f := range n.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

var (
	goBuild    = regexp.MustCompile(`\bgo\s+build\b`)
	goBuildOut = regexp.MustCompile(`\s-o[= ]\s*(\S+)`)
	numericID  = regexp.MustCompile(`^[0-9]+$`)
)

// checkDockerfile returns what is wrong with a Dockerfile for meshgw: it
// must build the binary statically in one stage and ship only that binary,
// run by a numeric non-root user, in a later one.
func checkDockerfile(src []byte) []string {
	var bad []string
	ss, err := stages(src)
	if err != nil {
		return []string{err.Error()}
	}
	if len(ss) < 2 {
		return []string{fmt.Sprintf("%d stage(s); want a build stage and a final stage", len(ss))}
	}

	// The build stage: a RUN with `go build -o OUT` and CGO_ENABLED=0,
	// either on that command line or from an ENV of the stage.
	var build *stage
	var out string
	for i := range ss[:len(ss)-1] {
		cgoOff := false
		for _, n := range ss[i].cmds {
			switch n.Value {
			case "env":
				a := nodeArgs(n)
				for j := 0; j+1 < len(a); j += 2 {
					if a[j] == "CGO_ENABLED" {
						cgoOff = a[j+1] == "0"
					}
				}
			case "run":
				cmd := strings.Join(nodeArgs(n), " ")
				if !goBuild.MatchString(cmd) {
					continue
				}
				if !cgoOff && !strings.Contains(cmd, "CGO_ENABLED=0") {
					bad = append(bad, fmt.Sprintf("line %d: go build without CGO_ENABLED=0; the final stage has no libc", n.StartLine))
				}
				if m := goBuildOut.FindStringSubmatch(cmd); m != nil {
					build, out = &ss[i], m[1]
				} else {
					bad = append(bad, fmt.Sprintf("line %d: go build without -o; where does the binary go?", n.StartLine))
				}
			}
		}
	}
	if build == nil {
		return append(bad, "no stage before the last runs go build -o ...")
	}
	if build.name == "" {
		bad = append(bad, "the build stage has no name (FROM ... AS build); COPY --from=<index> breaks when a stage is added")
	}

	final := ss[len(ss)-1]
	var user, binary string
	var entrypoint []string
	for _, n := range final.cmds {
		a := nodeArgs(n)
		switch n.Value {
		case "user":
			if len(a) > 0 {
				user = a[0]
			}
		case "copy":
			from, ok := flag(n, "from")
			if !ok || (from != build.name && from != strconv.Itoa(build.index)) || len(a) != 2 || a[0] != out {
				continue
			}
			binary = a[1]
		case "entrypoint":
			if !n.Attributes["json"] {
				bad = append(bad, fmt.Sprintf("line %d: ENTRYPOINT in shell form; the image has no shell", n.StartLine))
			}
			entrypoint = a
		case "run":
			bad = append(bad, fmt.Sprintf("line %d: RUN in the final stage; it should only receive the binary", n.StartLine))
		}
	}
	// USER is checked explicitly even on a :nonroot base image: the base's
	// user is out of this file's sight, and the kubelet enforces
	// runAsNonRoot only for a numeric user.
	uid, gid, hasGID := strings.Cut(user, ":")
	switch {
	case user == "":
		bad = append(bad, "the final stage sets no USER")
	case !numericID.MatchString(uid) || (hasGID && !numericID.MatchString(gid)):
		bad = append(bad, fmt.Sprintf("USER %s is not numeric", user))
	case uid == "0" || strings.Trim(uid, "0") == "":
		bad = append(bad, fmt.Sprintf("USER %s is root", user))
	}
	if binary == "" {
		bad = append(bad, fmt.Sprintf("the final stage does not COPY --from=%s %s", build.name, out))
	}
	if len(entrypoint) == 0 || entrypoint[0] != binary {
		bad = append(bad, fmt.Sprintf("ENTRYPOINT %q does not start with the binary copied from the build stage (%q)", entrypoint, binary))
	}
	return bad
}

func readDockerfile(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestDockerfile(t *testing.T) {
	src := readDockerfile(t)
	for _, msg := range checkDockerfile(src) {
		t.Error("Dockerfile: " + msg)
	}
	ss, err := stages(src)
	if err != nil || len(ss) == 0 {
		t.Fatalf("no stages (%v)", err)
	}
	// The golang image's minor version follows go.mod's go directive:
	// an older toolchain cannot build the module, and a newer one than
	// CI's would let the image build what CI never tested.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]) + "-"; !strings.HasPrefix(ss[0].base, want) && ss[0].base != "golang:"+string(m[1]) {
		t.Errorf("build stage FROM %s; want %s... to match go.mod's go %s", ss[0].base, want, m[1])
	}
	if strings.HasSuffix(ss[0].base, ":latest") || !strings.Contains(ss[0].base, ":") {
		t.Errorf("build stage FROM %s is not pinned to a tag", ss[0].base)
	}
}

// TestDockerfileExposesManifestPorts: EXPOSE documents the ports; it must
// list every port a manifest declares for the image.
func TestDockerfileExposesManifestPorts(t *testing.T) {
	ss, err := stages(readDockerfile(t))
	if err != nil || len(ss) == 0 {
		t.Fatalf("no stages (%v)", err)
	}
	exposed := map[string]bool{}
	for _, n := range ss[len(ss)-1].cmds {
		if n.Value == "expose" {
			for _, p := range nodeArgs(n) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				exposed[strings.ToLower(p)] = true
			}
		}
	}
	for _, w := range load(t).workloads() {
		for _, p := range w.container(t).Ports {
			key := fmt.Sprintf("%d/%s", p.ContainerPort, strings.ToLower(string(proto(p.Protocol))))
			if !exposed[key] {
				t.Errorf("%s: port %s (%s) is not EXPOSEd by the Dockerfile", w.name, p.Name, key)
			}
		}
	}
}

// TestDockerfileCheckRejects breaks the real Dockerfile one way at a time
// and expects checkDockerfile to notice, so that TestDockerfile cannot pass
// because the check looks at nothing.
func TestDockerfileCheckRejects(t *testing.T) {
	src := string(readDockerfile(t))
	for _, tc := range []struct{ name, old, new string }{
		{"no USER", "\nUSER 65532:65532\n", "\n"},
		{"USER root", "\nUSER 65532:65532\n", "\nUSER 0:0\n"},
		{"USER by name", "\nUSER 65532:65532\n", "\nUSER nonroot:nonroot\n"},
		{"cgo on", "CGO_ENABLED=0 ", ""},
		{"one stage", "FROM gcr.io/distroless/static-debian12:nonroot\n", ""},
		{"binary not from the build stage", "COPY --from=build /out/meshgw /meshgw", "COPY meshgw /meshgw"},
		{"binary from elsewhere", "COPY --from=build /out/meshgw /meshgw", "COPY --from=build /src/meshgw /meshgw"},
		{"entrypoint elsewhere", `ENTRYPOINT ["/meshgw"]`, `ENTRYPOINT ["/bin/meshgw"]`},
		{"entrypoint in shell form", `ENTRYPOINT ["/meshgw"]`, `ENTRYPOINT /meshgw`},
		{"unnamed build stage", " AS build\n", "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := strings.Replace(src, tc.old, tc.new, 1)
			if broken == src {
				t.Fatalf("%q is not in the Dockerfile; update this case", tc.old)
			}
			bad := checkDockerfile([]byte(broken))
			if len(bad) == 0 {
				t.Errorf("checkDockerfile found nothing wrong with:\n%s", broken)
			}
			t.Logf("rejected as expected: %q", bad)
		})
	}
}

// TestDockerignore checks that .dockerignore keeps out nothing the image
// is built from: every non-test Go file and go:embed file of the packages
// ./cmd/meshgw is made of, and go.mod and go.sum. Excluding one would only
// show up in a `docker build`, which CI does not run.
func TestDockerignore(t *testing.T) {
	f, err := os.Open("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}

	// `go list -deps` names the packages and files of the binary (for this
	// machine's GOOS/GOARCH; IgnoredGoFiles adds the other platforms').
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,Module,GoFiles,IgnoredGoFiles,EmbedFiles", "./cmd/meshgw")
	cmd.Dir = ".."
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(outb))
	for dec.More() {
		var p struct {
			Dir                                 string
			Module                              *struct{ Main bool }
			GoFiles, IgnoredGoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || !p.Module.Main {
			continue // the standard library and module dependencies
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range append(append(p.GoFiles, p.IgnoredGoFiles...), p.EmbedFiles...) {
			if !strings.HasSuffix(name, "_test.go") {
				files = append(files, filepath.ToSlash(filepath.Join(rel, name)))
			}
		}
	}
	if len(files) < 4 {
		t.Fatalf("go list found only %q", files)
	}
	for _, file := range files {
		excluded, err := pm.MatchesOrParentMatches(file)
		if err != nil {
			t.Fatal(err)
		}
		if excluded {
			t.Errorf(".dockerignore excludes %s, which the meshgw binary is built from", file)
		}
	}
	// And it does keep out what is big or secret.
	for _, file := range []string{".git/config", "rtsp/demo/demo_test.go", "tests/e2e/doc.go"} {
		if excluded, _ := pm.MatchesOrParentMatches(file); !excluded {
			t.Errorf(".dockerignore lets %s into the build context", file)
		}
	}
}
