package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// namespace is where every namespaced meshgw object must live: the
// manifests name it explicitly so `kubectl apply -f deploy/` does not put
// them in whatever namespace the user's context defaults to.
const namespace = "meshgw"

// manifest is one decoded YAML document of a file under deploy/.
type manifest struct {
	file string // path relative to deploy/
	doc  int    // 1-based document number in file
	kind string // apiVersion + "/" + kind, the key of kinds
	obj  object
}

func (m manifest) String() string {
	return fmt.Sprintf("%s#%d (%s %s)", m.file, m.doc, m.kind, m.obj.GetName())
}

// object is what every known kind has: Kubernetes' object metadata.
type object interface {
	GetName() string
	GetNamespace() string
	GetLabels() map[string]string
}

// kinds are the apiVersion/kind pairs meshgw's manifests may use, each with
// the Go type its documents are decoded into. Anything else fails the test:
// a kind nobody checks is a kind a typo can hide in.
var kinds = map[string]struct {
	new        func() object
	namespaced bool
}{
	"v1/Namespace":       {func() object { return new(corev1.Namespace) }, false},
	"v1/ServiceAccount":  {func() object { return new(corev1.ServiceAccount) }, true},
	"v1/ConfigMap":       {func() object { return new(corev1.ConfigMap) }, true},
	"v1/Service":         {func() object { return new(corev1.Service) }, true},
	"apps/v1/Deployment": {func() object { return new(appsv1.Deployment) }, true},
	"apps/v1/DaemonSet":  {func() object { return new(appsv1.DaemonSet) }, true},
	"spire.spiffe.io/v1alpha1/ClusterSPIFFEID": {func() object { return new(clusterSPIFFEID) }, false},
	"monitoring.coreos.com/v1/ServiceMonitor":  {func() object { return new(serviceMonitor) }, true},
}

// clusterSPIFFEID mirrors spire-controller-manager's ClusterSPIFFEID
// (api/v1alpha1/clusterspiffeid_types.go, group spire.spiffe.io, version
// v1alpha1). Importing that module would pull in controller-runtime and the
// SPIRE API for two documents; a copy of the spec's fields is enough to
// decode them strictly. Status is left out: a manifest has none.
type clusterSPIFFEID struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              clusterSPIFFEIDSpec `json:"spec"`
}

// clusterSPIFFEIDSpec mirrors every field of spire-controller-manager's
// v1alpha1 ClusterSPIFFEIDSpec, with the same JSON names, so that a valid
// field decodes and a misspelled one is unknown.
type clusterSPIFFEIDSpec struct {
	SPIFFEIDTemplate          string                `json:"spiffeIDTemplate"`
	TTL                       metav1.Duration       `json:"ttl"`
	JWTTTL                    metav1.Duration       `json:"jwtTtl"`
	DNSNameTemplates          []string              `json:"dnsNameTemplates,omitempty"`
	WorkloadSelectorTemplates []string              `json:"workloadSelectorTemplates,omitempty"`
	FederatesWith             []string              `json:"federatesWith,omitempty"`
	NamespaceSelector         *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	PodSelector               *metav1.LabelSelector `json:"podSelector,omitempty"`
	Admin                     bool                  `json:"admin,omitempty"`
	Downstream                bool                  `json:"downstream,omitempty"`
	AutoPopulateDNSNames      bool                  `json:"autoPopulateDNSNames,omitempty"`
	ClassName                 string                `json:"className,omitempty"`
	Fallback                  bool                  `json:"fallback,omitempty"`
	Hint                      string                `json:"hint,omitempty"`
}

// decodeFile splits a (multi-document) YAML file and decodes every document
// strictly into the type its apiVersion and kind name. Documents holding
// only comments are skipped, as kubectl skips them.
func decodeFile(file string, data []byte) ([]manifest, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []manifest
	for doc := 1; ; doc++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", file, doc, err)
		}
		m, ok, err := decodeDoc(raw)
		if err != nil {
			return nil, fmt.Errorf("%s#%d: %w", file, doc, err)
		}
		if ok {
			m.file, m.doc = file, doc
			out = append(out, m)
		}
	}
}

// decodeDoc decodes one YAML document. ok is false for an empty document.
//
// Strict means what the API server's strict field validation means: YAML
// duplicate keys, JSON fields the Go type does not have and fields that
// differ from a known one only in case are all errors. (encoding/json, and
// so sigs.k8s.io/yaml.UnmarshalStrict, would match "HostNetwork" to
// hostNetwork; sigs.k8s.io/json, which the API server uses, does not.)
func decodeDoc(raw []byte) (m manifest, ok bool, err error) {
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return m, false, err
	}
	if s := string(bytes.TrimSpace(js)); s == "null" || s == "" {
		return m, false, nil
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return m, false, fmt.Errorf("reading apiVersion and kind: %w", err)
	}
	m.kind = tm.APIVersion + "/" + tm.Kind
	k, known := kinds[m.kind]
	if !known {
		return m, false, fmt.Errorf("unknown apiVersion/kind %q (add it to kinds with its Go type)", m.kind)
	}
	m.obj = k.new()
	strict, err := kjson.UnmarshalStrict(js, m.obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return m, false, err
	}
	if len(strict) > 0 {
		return m, false, errors.Join(strict...)
	}
	return m, true, nil
}

// loadManifests decodes every *.yaml and *.yml file under deploy/ (the
// directory this test runs in), sorted by path.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var all []manifest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := decodeFile(f, data)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if len(ms) == 0 {
			t.Errorf("%s: no Kubernetes object in the file", f)
		}
		all = append(all, ms...)
	}
	return all
}

// find returns the one manifest of kind (the kinds key) named name.
func find[T object](t *testing.T, ms []manifest, kind, name string) T {
	t.Helper()
	for _, m := range ms {
		if m.kind == kind && m.obj.GetName() == name {
			return m.obj.(T)
		}
	}
	t.Fatalf("no %s named %q under deploy/", kind, name)
	var zero T
	return zero
}

func TestManifestsDecodeStrictly(t *testing.T) {
	ms := loadManifests(t)
	// The set meshgw needs; each is looked up by the checks below too, but
	// listing them here reports a missing one plainly.
	want := []struct{ kind, name string }{
		{"v1/Namespace", namespace},
		{"v1/ServiceAccount", "meshgw-control"},
		{"v1/ServiceAccount", "meshgw-node"},
		{"v1/ConfigMap", "meshgw-config"},
		{"apps/v1/Deployment", "meshgw-control"},
		{"v1/Service", "meshgw-control"},
		{"apps/v1/DaemonSet", "meshgw-node"},
		{"spire.spiffe.io/v1alpha1/ClusterSPIFFEID", "meshgw-control"},
		{"spire.spiffe.io/v1alpha1/ClusterSPIFFEID", "meshgw-node"},
	}
	for _, w := range want {
		find[object](t, ms, w.kind, w.name)
	}
	seen := map[string]manifest{}
	for _, m := range ms {
		name, ns := m.obj.GetName(), m.obj.GetNamespace()
		for _, msg := range validation.IsDNS1123Subdomain(name) {
			t.Errorf("%v: name: %s", m, msg)
		}
		switch {
		case kinds[m.kind].namespaced && ns != namespace:
			t.Errorf("%v: namespace %q, want %q", m, ns, namespace)
		case !kinds[m.kind].namespaced && ns != "":
			t.Errorf("%v: cluster-scoped, but has namespace %q", m, ns)
		}
		id := m.kind + " " + ns + "/" + name
		if prev, dup := seen[id]; dup {
			t.Errorf("%v: same object as %v; the later one would overwrite it", m, prev)
		}
		seen[id] = m
		checkLabels(t, m.String()+": metadata.labels", m.obj.GetLabels())
	}
}

// checkLabels reports label keys and values the API server would reject.
func checkLabels(t *testing.T, where string, labels map[string]string) {
	t.Helper()
	for k, v := range labels {
		for _, msg := range validation.IsQualifiedName(k) {
			t.Errorf("%s: key %q: %s", where, k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			t.Errorf("%s: %s=%q: %s", where, k, v, msg)
		}
	}
}

// TestStrictDecoderRejects shows the decoder is strict, so that
// TestManifestsDecodeStrictly cannot pass merely because nothing is checked.
// Each case breaks a valid document in one way.
func TestStrictDecoderRejects(t *testing.T) {
	const valid = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: meshgw-node
  namespace: meshgw
spec:
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      hostNetwork: true
      containers:
        - name: meshgw
          image: meshgw:dev
`
	if _, err := decodeFile("valid.yaml", []byte(valid)); err != nil {
		t.Fatalf("the valid document does not decode: %v", err)
	}
	const spiffeID = `apiVersion: spire.spiffe.io/v1alpha1
kind: ClusterSPIFFEID
metadata:
  name: meshgw-node
spec:
  spiffeIDTemplate: "spiffe://{{ .TrustDomain }}/meshgw/node/{{ .PodSpec.NodeName }}"
`
	if _, err := decodeFile("valid.yaml", []byte(spiffeID)); err != nil {
		t.Fatalf("the valid ClusterSPIFFEID does not decode: %v", err)
	}
	for _, tc := range []struct{ name, valid, old, new string }{
		{"misspelled field", valid, "hostNetwork:", "hostNetwrok:"},
		{"field in the wrong case", valid, "hostNetwork:", "HostNetwork:"},
		{"field at the wrong level", valid, "  template:", "  hostNetwork: true\n  template:"},
		{"duplicate key", valid, "      hostNetwork: true", "      hostNetwork: true\n      hostNetwork: false"},
		{"wrong value type", valid, "hostNetwork: true", "hostNetwork: [true]"},
		{"unknown kind", valid, "kind: DaemonSet", "kind: DeamonSet"},
		{"unknown apiVersion", valid, "apiVersion: apps/v1", "apiVersion: extensions/v1beta1"},
		{"custom resource: misspelled field", spiffeID, "spiffeIDTemplate:", "spiffeIdTemplate:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(tc.valid, tc.old, tc.new, 1)
			if doc == tc.valid {
				t.Fatalf("%q is not in the valid document", tc.old)
			}
			if _, err := decodeFile("broken.yaml", []byte(doc)); err == nil {
				t.Errorf("decoded without error:\n%s", doc)
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
}
