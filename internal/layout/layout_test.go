package layout

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// module is the module path; packages are named relative to it in messages ("rtp/nack").
const module = "github.com/meshgw/meshgw"

// root is the module's directory, seen from this package's.
const root = "../.."

// gortsplib is the RTSP library only the rtsp tree wraps.
const gortsplib = "github.com/bluenviron/gortsplib"

// archDoc is the document whose package map must name every package.
const archDoc = "docs/ARCHITECTURE.md"

// pkg is what `go list -json` says about one package of the module.
type pkg struct {
	ImportPath   string
	Dir          string
	Imports      []string // non-test files
	TestImports  []string // _test.go files of the package itself
	XTestImports []string // _test.go files of package x_test
	Deps         []string // transitive imports of the non-test files
	Error        *struct{ Err string }
}

// rel is p's path inside the module ("rtp/nack"); "" for the module root.
func rel(p string) string {
	return strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
}

// ours tells the module's packages from the rest of the world.
func ours(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }

// under reports whether the module-relative path r is tree or inside it.
func under(r, tree string) bool { return r == tree || strings.HasPrefix(r, tree+"/") }

var (
	listOnce sync.Once
	listPkgs []pkg
	listErr  error
)

// list runs `go list -json ./...` once for all tests. go test puts its own go first on PATH.
func list(t *testing.T) []pkg {
	t.Helper()
	listOnce.Do(func() {
		cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,Imports,TestImports,XTestImports,Deps,Error", "./...")
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			listErr = errors.Join(err, errors.New(stderr.String()))
			return
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			var p pkg
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				listErr = err
				return
			}
			listPkgs = append(listPkgs, p)
		}
	})
	if listErr != nil {
		t.Fatalf("go list -json ./...: %v", listErr)
	}
	for _, p := range listPkgs {
		if p.Error != nil {
			t.Errorf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
	}
	return listPkgs
}

// layer ranks the trees of the one-way graph cmd -> gateway -> rtsp -> rtp -> fec: a package may
// import its own tree and lower ones. Packages outside these trees (internal/ test helpers,
// deploy, tests/e2e) are not ranked.
func layer(r string) (rank int, tree string, ok bool) {
	for i, t := range []string{"fec", "rtp", "rtsp", "gateway", "cmd"} {
		if under(r, t) {
			return i, t, true
		}
	}
	// memif (the shared-memory protocol) is a leaf beside fec: rtp's memif transport uses it
	if under(r, "memif") {
		return 0, "memif", true
	}
	return 0, "", false
}

// TestImportsPointDown checks the one-way graph cmd -> gateway -> rtsp -> rtp -> fec on every
// import, test files' included (a test that reaches up is an import cycle waiting to happen).
func TestImportsPointDown(t *testing.T) {
	for _, p := range list(t) {
		from := rel(p.ImportPath)
		fr, ftree, ok := layer(from)
		if !ok {
			continue
		}
		for _, imp := range importsOf(p) {
			if !ours(imp.path) {
				continue
			}
			to := rel(imp.path)
			tr, ttree, ok := layer(to)
			if ok && tr > fr {
				t.Errorf("%s imports %s (%s): the graph is cmd -> gateway -> rtsp -> rtp -> fec, and %s/... must not import %s/...; move the shared code down to %s or below",
					from, to, imp.where, ftree, ttree, ftree)
			}
		}
	}
}

// TestFECIsALeaf: fec is pure functions on packets and imports nothing of meshgw (its tests may
// use the internal test helpers); neither does memif, the shared-memory protocol.
func TestFECIsALeaf(t *testing.T) {
	for _, p := range list(t) {
		from := rel(p.ImportPath)
		if !under(from, "fec") && !under(from, "memif") {
			continue
		}
		for _, imp := range importsOf(p) {
			if !ours(imp.path) || under(rel(imp.path), from) {
				continue
			}
			if imp.where != "non-test files" && under(rel(imp.path), "internal") {
				continue
			}
			t.Errorf("%s imports %s (%s): fec and memif import nothing of meshgw", from, rel(imp.path), imp.where)
		}
	}
}

// TestST2110IsALeaf: rtp/st2110 (the 2110 SDP reader, reassembler and packetizer) imports nothing
// of meshgw, so rtp, the node's runners and a frame consumer can all use it without a cycle.
func TestST2110IsALeaf(t *testing.T) {
	for _, p := range list(t) {
		from := rel(p.ImportPath)
		if !under(from, "rtp/st2110") {
			continue
		}
		for _, imp := range importsOf(p) {
			if !ours(imp.path) || under(rel(imp.path), from) || imp.where != "non-test files" {
				continue
			}
			t.Errorf("%s imports %s (%s): rtp/st2110 is a leaf and imports nothing of meshgw", from, rel(imp.path), imp.where)
		}
	}
}

// TestGortsplibOnlyUnderRTSP: gortsplib is wrapped by the rtsp tree; everything else speaks
// meshgw's own types. Tests and the load tool (cmd/meshload, an RTSP client by trade) may use it.
func TestGortsplibOnlyUnderRTSP(t *testing.T) {
	for _, p := range list(t) {
		from := rel(p.ImportPath)
		if under(from, "rtsp") || from == "cmd/meshload" {
			continue
		}
		for _, imp := range p.Imports {
			if imp == gortsplib || strings.HasPrefix(imp, gortsplib+"/") {
				t.Errorf("%s imports %s in its non-test files: only packages under rtsp/ (and the cmd/meshload load tool) may import gortsplib; add what you need to an rtsp/ package",
					from, imp)
			}
		}
	}
}

// TestNodeDoesNotNeedTheRTSPServer: gateway/node wires sources and sinks; it may use rtsp/pull,
// rtsp/demo and rtsp/sdp, but not the RTSP server package, which is the control's front door.
func TestNodeDoesNotNeedTheRTSPServer(t *testing.T) {
	pkgs := list(t)
	byPath := map[string]pkg{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	const from, server = module + "/gateway/node", module + "/rtsp"
	node, ok := byPath[from]
	if !ok {
		t.Fatalf("go list did not report %s", from)
	}
	if !slices.Contains(node.Deps, server) {
		return
	}
	t.Errorf("gateway/node depends on rtsp (the RTSP server) through %s: the node must not link the control's front door; take what it needs from rtsp/sdp, rtsp/pull or rtsp/demo (or move it there)",
		strings.Join(chain(byPath, from, server), " -> "))
}

// chain is a shortest import chain from one package of the module to another, in relative paths.
func chain(byPath map[string]pkg, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur == to {
			var out []string
			for c := cur; c != ""; c = prev[c] {
				out = append(out, rel(c))
			}
			slices.Reverse(out)
			return out
		}
		for _, imp := range byPath[cur].Imports {
			if _, seen := prev[imp]; !seen && ours(imp) {
				prev[imp] = cur
				queue = append(queue, imp)
			}
		}
	}
	return []string{rel(from), "...", rel(to)}
}

// TestPackageMapNamesEveryPackage keeps docs/ARCHITECTURE.md true: every directory of the
// repository that holds Go files is a row of its "Package map" table.
func TestPackageMapNamesEveryPackage(t *testing.T) {
	named, err := packageMap(filepath.Join(root, archDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range without(goDirs(t), named) {
		t.Errorf("%s holds Go files but is not a row of the package map in %s: add the row \"| `%s` | what it carries | what it may import |\"",
			d, archDoc, d)
	}
}

// TestPackageMapHasNoStaleRows is the other half: a row of the package map names a directory that
// holds Go files, so a package that was renamed, moved or removed does not linger in the map.
func TestPackageMapHasNoStaleRows(t *testing.T) {
	named, err := packageMap(filepath.Join(root, archDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range without(named, goDirs(t)) {
		t.Errorf("the package map in %s has a row for %s, which holds no Go files: remove the row or fix its path", archDoc, d)
	}
}

// without lists, sorted, the keys of a that are not in b.
func without(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// goDirs are the module-relative directories that hold Go files: the packages go list reports
// and those it skips on this platform (build tags), without testdata, vendor and hidden trees.
func goDirs(t *testing.T) map[string]bool {
	t.Helper()
	dirs := map[string]bool{}
	for _, p := range list(t) {
		if r := rel(p.ImportPath); r != "" {
			dirs[r] = true
		}
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") {
			if r, err := filepath.Rel(root, filepath.Dir(path)); err == nil && r != "." {
				dirs[filepath.ToSlash(r)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// mapRow is a package map row: its first cell is one package path in backquotes.
var mapRow = regexp.MustCompile("^\\|\\s*`([a-z0-9_./-]+)`\\s*\\|")

// packageMap returns the package paths named by the rows of the table under the "## Package map"
// heading of the architecture document.
func packageMap(file string) (map[string]bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	named := map[string]bool{}
	in, found := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.EqualFold(strings.TrimSpace(line[3:]), "Package map")
			found = found || in
			continue
		}
		if m := mapRow.FindStringSubmatch(line); in && m != nil {
			named[strings.TrimSuffix(m[1], "/")] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, errors.New(archDoc + " has no \"## Package map\" section")
	}
	return named, nil
}

// anImport is one import of a package and the files it comes from.
type anImport struct {
	path  string
	where string
}

// importsOf lists p's imports with their origin, non-test first.
func importsOf(p pkg) []anImport {
	var out []anImport
	for _, s := range []struct {
		list  []string
		where string
	}{{p.Imports, "non-test files"}, {p.TestImports, "_test.go files"}, {p.XTestImports, "external _test.go files"}} {
		for _, i := range s.list {
			out = append(out, anImport{i, s.where})
		}
	}
	return out
}
