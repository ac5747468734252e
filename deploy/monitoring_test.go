package deploy

import (
	"net"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshgw/meshgw/gateway/config"
)

// serviceMonitor mirrors the Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1,
// pkg/apis/monitoring/v1/servicemonitor_types.go) for the fields meshgw's manifest uses and
// their common neighbours, with the same JSON names. Importing the operator's module would pull
// in its whole API for one document; a field not listed here fails the strict decode, so using
// a new one means adding it here.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	JobLabel          string                   `json:"jobLabel,omitempty"`
	TargetLabels      []string                 `json:"targetLabels,omitempty"`
	PodTargetLabels   []string                 `json:"podTargetLabels,omitempty"`
	Endpoints         []serviceMonitorEndpoint `json:"endpoints"`
	Selector          metav1.LabelSelector     `json:"selector"`
	NamespaceSelector struct {
		Any        bool     `json:"any,omitempty"`
		MatchNames []string `json:"matchNames,omitempty"`
	} `json:"namespaceSelector,omitempty"`
	SampleLimit *uint64 `json:"sampleLimit,omitempty"`
}

type serviceMonitorEndpoint struct {
	Port          string `json:"port,omitempty"`
	Path          string `json:"path,omitempty"`
	Scheme        string `json:"scheme,omitempty"`
	Interval      string `json:"interval,omitempty"`
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
	HonorLabels   bool   `json:"honorLabels,omitempty"`
}

// apiPort is the port of api.listen in the ConfigMap file name, and the file's api settings.
func apiPort(t *testing.T, c cluster, file string) (int32, config.API) {
	t.Helper()
	cfg, err := config.Parse(file, []byte(c.config.Data[file]))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if !cfg.API.Enabled() {
		t.Fatalf("%s has no api: section; probes and metrics need it", file)
	}
	_, p, err := net.SplitHostPort(cfg.API.Listen)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("%s: api.listen %q", file, cfg.API.Listen)
	}
	return int32(n), cfg.API
}

// TestProbesAndScraping: both roles serve probes and metrics on api.listen of their config
// file, without credentials (the kubelet and an annotation-driven Prometheus have none), and the
// manifests point the readiness probe at /readyz, the liveness probe at /healthz and the
// prometheus.io annotations at /metrics, all on that port.
func TestProbesAndScraping(t *testing.T) {
	c := load(t)
	for i, w := range c.workloads() {
		file := []string{"control.yaml", "node.yaml"}[i]
		port, api := apiPort(t, c, file)
		if api.MetricsAuth || api.Pprof || api.TLS() {
			t.Errorf("%s: api %+v: probes and annotation scrapes need plain HTTP and metrics_auth: false", file, api)
		}
		ctr := w.container(t)
		cp := containerPortNamed(ctr, "api")
		if cp == nil || cp.ContainerPort != port || proto(cp.Protocol) != corev1.ProtocolTCP {
			t.Errorf("%s: container port api %+v, want %d/TCP (api.listen of %s)", w.name, cp, port, file)
		}
		for _, pr := range []struct {
			name string
			p    *corev1.Probe
			path string
		}{{"readiness", ctr.ReadinessProbe, "/readyz"}, {"liveness", ctr.LivenessProbe, "/healthz"}} {
			if pr.p == nil || pr.p.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", w.name, pr.name)
				continue
			}
			g := pr.p.HTTPGet
			if g.Path != pr.path || containerPort(ctr, g.Port, 0) != cp || (g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP) {
				t.Errorf("%s: %s probe %s %s on port %s, want %s on api", w.name, pr.name, g.Scheme, g.Path, g.Port.String(), pr.path)
			}
		}
		if lp := ctr.LivenessProbe; lp != nil && lp.FailureThreshold*lp.PeriodSeconds < 30 {
			t.Errorf("%s: liveness gives up after %d s; a loaded host stalls longer", w.name, lp.FailureThreshold*lp.PeriodSeconds)
		}
		ann := w.pod.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(port)) || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: prometheus.io annotations %v, want scrape true, port %d, path /metrics", w.name, ann, port)
		}
	}
}

// TestServiceMonitor: the ServiceMonitor's selector finds a Service for the control and one for
// the nodes, each with the endpoint's port, targeting the pods' api port.
func TestServiceMonitor(t *testing.T) {
	c := load(t)
	sm := find[*serviceMonitor](t, c.all, "monitoring.coreos.com/v1/ServiceMonitor", "meshgw")
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v", sm.Spec.Selector, err)
	}
	if ns := sm.Spec.NamespaceSelector.MatchNames; len(ns) != 1 || ns[0] != namespace {
		t.Errorf("namespaceSelector %v, want [%s]", ns, namespace)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("endpoints %+v, want one on /metrics", sm.Spec.Endpoints)
	}
	port := sm.Spec.Endpoints[0].Port
	covered := map[string]bool{}
	for _, m := range c.all {
		svc, ok := m.obj.(*corev1.Service)
		if !ok || !sel.Matches(labels.Set(svc.Labels)) {
			continue
		}
		sp := servicePort(svc, port)
		if sp == nil {
			t.Errorf("Service %s is selected but has no port %q", svc.Name, port)
			continue
		}
		for i, w := range c.workloads() {
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.pod.Labels)) {
				continue
			}
			cp := containerPort(w.container(t), sp.TargetPort, sp.Port)
			if cp == nil || cp.Name != "api" {
				t.Errorf("Service %s port %s reaches %s's port %v, want api", svc.Name, port, w.name, cp)
			}
			covered[[]string{"control", "nodes"}[i]] = true
		}
	}
	if !covered["control"] || !covered["nodes"] {
		t.Errorf("the ServiceMonitor scrapes %v, want the control and the nodes", covered)
	}
}

func containerPortNamed(c *corev1.Container, name string) *corev1.ContainerPort {
	for i, p := range c.Ports {
		if p.Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}
