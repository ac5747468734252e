package deploy

import (
	"bytes"
	"net"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/meshgw/meshgw/gateway/config"
)

// Names the manifests, the config files and the README agree on.
const (
	configMapName = "meshgw-config"
	controlName   = "meshgw-control"
	nodeName      = "meshgw-node"
	spireSocket   = "unix:///run/spire/agent-sockets/spire-agent.sock"
	spireHostDir  = "/run/spire/agent-sockets"
)

// workload is a pod template with the name of what owns it, so the checks
// below run once over the control and the nodes alike.
type workload struct {
	name string
	pod  *corev1.PodTemplateSpec
	sel  *metav1.LabelSelector
}

// cluster is everything under deploy/, looked up by role.
type cluster struct {
	all       []manifest
	control   *appsv1.Deployment
	nodes     *appsv1.DaemonSet
	service   *corev1.Service
	config    *corev1.ConfigMap
	namespace *corev1.Namespace
}

func load(t *testing.T) cluster {
	t.Helper()
	ms := loadManifests(t)
	return cluster{
		all:       ms,
		control:   find[*appsv1.Deployment](t, ms, "apps/v1/Deployment", controlName),
		nodes:     find[*appsv1.DaemonSet](t, ms, "apps/v1/DaemonSet", nodeName),
		service:   find[*corev1.Service](t, ms, "v1/Service", controlName),
		config:    find[*corev1.ConfigMap](t, ms, "v1/ConfigMap", configMapName),
		namespace: find[*corev1.Namespace](t, ms, "v1/Namespace", namespace),
	}
}

func (c cluster) workloads() []workload {
	return []workload{
		{"Deployment " + c.control.Name, &c.control.Spec.Template, c.control.Spec.Selector},
		{"DaemonSet " + c.nodes.Name, &c.nodes.Spec.Template, c.nodes.Spec.Selector},
	}
}

// container returns the one container of w; meshgw pods have no sidecars,
// and the checks below assume the meshgw container is the only one.
func (w workload) container(t *testing.T) *corev1.Container {
	t.Helper()
	if n := len(w.pod.Spec.Containers); n != 1 {
		t.Fatalf("%s: %d containers, want 1", w.name, n)
	}
	return &w.pod.Spec.Containers[0]
}

func TestDaemonSetHostNetwork(t *testing.T) {
	c := load(t)
	spec := c.nodes.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("DaemonSet: hostNetwork is not true; RTP would leave through the pod network's NAT")
	}
	// The default policy for a hostNetwork pod is the host's resolv.conf,
	// where the control's Service name does not resolve.
	if spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("DaemonSet: dnsPolicy %q, want %q", spec.DNSPolicy, corev1.DNSClusterFirstWithHostNet)
	}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			// With hostNetwork the API server requires hostPort to be
			// unset or equal to containerPort.
			if p.HostPort != 0 && p.HostPort != p.ContainerPort {
				t.Errorf("DaemonSet: port %s: hostPort %d differs from containerPort %d", p.Name, p.HostPort, p.ContainerPort)
			}
			// Binding below 1024 would need CAP_NET_BIND_SERVICE, which
			// the containers drop.
			if p.ContainerPort < 1024 {
				t.Errorf("DaemonSet: port %s: %d is privileged", p.Name, p.ContainerPort)
			}
		}
	}
	// The control's embedded node binds the same RTP/RTCP ports as the
	// node on its host; only in its own pod network do the two not collide.
	if c.control.Spec.Template.Spec.HostNetwork {
		t.Error("Deployment: hostNetwork is true; the control's ports would collide with the node on its host")
	}
}

// TestNotRoot checks what keeps a compromised meshgw from owning the host
// it shares a network with: non-root with a numeric UID (the kubelet cannot
// check a user name against runAsNonRoot), no way to gain privileges, no
// capabilities, a read-only root.
func TestNotRoot(t *testing.T) {
	for _, w := range load(t).workloads() {
		psc := w.pod.Spec.SecurityContext
		if psc == nil {
			psc = &corev1.PodSecurityContext{}
		}
		all := append(append([]corev1.Container{}, w.pod.Spec.InitContainers...), w.pod.Spec.Containers...)
		for _, c := range all {
			where := w.name + ": container " + c.Name
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			// A container's own setting wins over the pod's.
			nonRoot, uid := psc.RunAsNonRoot, psc.RunAsUser
			if sc.RunAsNonRoot != nil {
				nonRoot = sc.RunAsNonRoot
			}
			if sc.RunAsUser != nil {
				uid = sc.RunAsUser
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if uid == nil || *uid == 0 {
				t.Errorf("%s: runAsUser is unset or 0; want a numeric non-root UID", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if caps := sc.Capabilities; caps == nil || len(caps.Drop) != 1 || caps.Drop[0] != "ALL" {
				t.Errorf("%s: capabilities do not drop [ALL]", where)
			} else if len(caps.Add) > 0 {
				t.Errorf("%s: adds capabilities %v", where, caps.Add)
			}
		}
	}
}

// TestSameImage: the control and the nodes speak a private protocol to each
// other, so they must come from one build.
func TestSameImage(t *testing.T) {
	c := load(t)
	var images []string
	for _, w := range c.workloads() {
		images = append(images, w.container(t).Image)
	}
	if images[0] != images[1] {
		t.Errorf("control image %q, node image %q; they must be the same", images[0], images[1])
	}
	if images[0] == "" {
		t.Error("no image")
	}
}

// TestSelectors checks what the API server or the controllers would
// otherwise find out late: a workload's selector must select its own pods,
// and only its own, or the Deployment and the DaemonSet adopt each other's.
func TestSelectors(t *testing.T) {
	c := load(t)
	ws := c.workloads()
	for i, w := range ws {
		checkLabels(t, w.name+": pod labels", w.pod.Labels)
		sel, err := metav1.LabelSelectorAsSelector(w.sel)
		if err != nil {
			t.Fatalf("%s: selector: %v", w.name, err)
		}
		if sel.Empty() {
			t.Errorf("%s: empty selector", w.name)
		}
		if !sel.Matches(labels.Set(w.pod.Labels)) {
			t.Errorf("%s: selector %v does not match its pod labels %v", w.name, sel, w.pod.Labels)
		}
		other := ws[1-i]
		if sel.Matches(labels.Set(other.pod.Labels)) {
			t.Errorf("%s: selector %v also matches the pods of %s", w.name, sel, other.name)
		}
		if sa := w.pod.Spec.ServiceAccountName; sa != "" {
			find[*corev1.ServiceAccount](t, c.all, "v1/ServiceAccount", sa)
		}
	}
}

// TestService checks that the control's Service reaches the control and
// only the control, on ports its container has.
func TestService(t *testing.T) {
	c := load(t)
	svc := c.service.Spec
	sel := labels.SelectorFromSet(svc.Selector)
	if len(svc.Selector) == 0 {
		t.Fatal("Service has no selector")
	}
	if !sel.Matches(labels.Set(c.control.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not match the control's pod labels %v", svc.Selector, c.control.Spec.Template.Labels)
	}
	if sel.Matches(labels.Set(c.nodes.Spec.Template.Labels)) {
		t.Errorf("Service selector %v also matches the node pods", svc.Selector)
	}
	ctr := workload{pod: &c.control.Spec.Template}.container(t)
	for _, sp := range svc.Ports {
		cp := containerPort(ctr, sp.TargetPort, sp.Port)
		if cp == nil {
			t.Errorf("Service port %s (%d, target %s): no such port in the control's container", sp.Name, sp.Port, sp.TargetPort.String())
			continue
		}
		if proto(sp.Protocol) != proto(cp.Protocol) {
			t.Errorf("Service port %s is %s but container port %s is %s", sp.Name, proto(sp.Protocol), cp.Name, proto(cp.Protocol))
		}
	}
	for _, want := range []string{"rtsp", "grpc"} {
		if servicePort(c.service, want) == nil {
			t.Errorf("Service has no port named %q", want)
		}
	}
}

// containerPort finds the port a Service port targets: by name, by number,
// or (no targetPort) the Service port's own number.
func containerPort(c *corev1.Container, target intstr.IntOrString, port int32) *corev1.ContainerPort {
	for i, p := range c.Ports {
		switch {
		case target.Type == intstr.String && target.StrVal != "":
			if p.Name == target.StrVal {
				return &c.Ports[i]
			}
		case target.IntVal != 0:
			if p.ContainerPort == target.IntVal {
				return &c.Ports[i]
			}
		case p.ContainerPort == port:
			return &c.Ports[i]
		}
	}
	return nil
}

func servicePort(s *corev1.Service, name string) *corev1.ServicePort {
	for i, p := range s.Spec.Ports {
		if p.Name == name {
			return &s.Spec.Ports[i]
		}
	}
	return nil
}

// proto is p with the API server's default (TCP) filled in.
func proto(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// TestPortNames: Services and probes refer to container ports by name, and
// the API server limits port names to IANA service names.
func TestPortNames(t *testing.T) {
	for _, w := range load(t).workloads() {
		seen := map[string]bool{}
		for _, p := range w.container(t).Ports {
			for _, msg := range validation.IsValidPortName(p.Name) {
				t.Errorf("%s: port %q: %s", w.name, p.Name, msg)
			}
			if seen[p.Name] {
				t.Errorf("%s: port name %q used twice", w.name, p.Name)
			}
			seen[p.Name] = true
		}
		if p := w.container(t).ReadinessProbe; p != nil && p.TCPSocket != nil {
			if containerPort(w.container(t), p.TCPSocket.Port, 0) == nil {
				t.Errorf("%s: readiness probe targets port %s, which the container does not have", w.name, p.TCPSocket.Port.String())
			}
		}
	}
}

// TestVolumes: every mount has a volume, every ConfigMap volume projects
// keys that exist in a ConfigMap under deploy/, and the SPIRE agent socket
// directory is mounted read-only from the host where
// SPIFFE_ENDPOINT_SOCKET points.
func TestVolumes(t *testing.T) {
	c := load(t)
	for _, w := range c.workloads() {
		vols := map[string]*corev1.Volume{}
		for i, v := range w.pod.Spec.Volumes {
			if vols[v.Name] != nil {
				t.Errorf("%s: volume %q defined twice", w.name, v.Name)
			}
			vols[v.Name] = &w.pod.Spec.Volumes[i]
			if cm := v.ConfigMap; cm != nil {
				data := find[*corev1.ConfigMap](t, c.all, "v1/ConfigMap", cm.Name).Data
				for _, it := range cm.Items {
					if _, ok := data[it.Key]; !ok {
						t.Errorf("%s: volume %q projects key %q, which ConfigMap %s does not have", w.name, v.Name, it.Key, cm.Name)
					}
				}
			}
		}
		ctr := w.container(t)
		used := map[string]bool{}
		for _, m := range ctr.VolumeMounts {
			used[m.Name] = true
			if vols[m.Name] == nil {
				t.Errorf("%s: volumeMount %q has no volume", w.name, m.Name)
			}
		}
		for name := range vols {
			if !used[name] {
				t.Errorf("%s: volume %q is mounted nowhere", w.name, name)
			}
		}

		sock := envValue(ctr, "SPIFFE_ENDPOINT_SOCKET")
		if sock != spireSocket {
			t.Errorf("%s: SPIFFE_ENDPOINT_SOCKET=%q, want %q", w.name, sock, spireSocket)
			continue
		}
		m := mountOf(ctr, strings.TrimPrefix(sock, "unix://"))
		if m == nil {
			t.Errorf("%s: no volume is mounted where SPIFFE_ENDPOINT_SOCKET points (%s)", w.name, sock)
			continue
		}
		if !m.ReadOnly {
			t.Errorf("%s: the SPIRE socket directory is mounted writable", w.name)
		}
		var hp *corev1.HostPathVolumeSource
		if v := vols[m.Name]; v != nil {
			hp = v.HostPath
		}
		switch {
		case hp == nil:
			t.Errorf("%s: volume %q holding the SPIRE socket is not a hostPath", w.name, m.Name)
		case hp.Path != spireHostDir:
			t.Errorf("%s: SPIRE socket hostPath %q, want %q", w.name, hp.Path, spireHostDir)
		case hp.Type == nil || *hp.Type != corev1.HostPathDirectory:
			// Directory: the pod waits for the SPIRE agent to create the
			// directory instead of the kubelet creating an empty one.
			t.Errorf("%s: SPIRE socket hostPath type is not Directory", w.name)
		}
	}
}

// envValue returns the literal value of env var name in c.
func envValue(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// mountOf returns the mount under which file lies, the deepest one first.
func mountOf(c *corev1.Container, file string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") &&
			(best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

// varRef is a $(VAR) reference in args, which the kubelet expands from env.
var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestArgs checks the command lines: the subcommand of each role, a -c file
// that the ConfigMap volume really puts there, and $(VAR) references the
// kubelet can expand (an undefined one is passed on literally, so a node
// would call itself "$(NODE_NAME)").
func TestArgs(t *testing.T) {
	c := load(t)
	for _, tc := range []struct {
		w       workload
		cmd     string
		file    string
		fields  map[string]string // flag -> the fieldRef its $(VAR) must come from
		wantVar map[string]string // flag -> expected argument
	}{
		{w: c.workloads()[0], cmd: "control", file: "control.yaml"},
		{
			w: c.workloads()[1], cmd: "node", file: "node.yaml",
			fields:  map[string]string{"-name": "spec.nodeName", "-data-address": "status.hostIP"},
			wantVar: map[string]string{"-name": "$(NODE_NAME)", "-data-address": "$(HOST_IP)"},
		},
	} {
		ctr := tc.w.container(t)
		args := ctr.Args
		if len(ctr.Command) > 0 {
			t.Errorf("%s: command overrides the image's ENTRYPOINT; set args only", tc.w.name)
		}
		if len(args) == 0 || args[0] != tc.cmd {
			t.Errorf("%s: args %q do not start with %q", tc.w.name, args, tc.cmd)
			continue
		}
		file, ok := flagValue(args, "-c")
		if !ok {
			t.Errorf("%s: no -c FILE in args %q", tc.w.name, args)
		} else if key := configKey(t, c, tc.w, file); key != tc.file {
			t.Errorf("%s: -c %s reads ConfigMap key %q, want %q", tc.w.name, file, key, tc.file)
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range ctr.Env {
			env[e.Name] = e
		}
		for _, a := range args {
			for _, m := range varRef.FindAllStringSubmatch(a, -1) {
				if _, ok := env[m[1]]; !ok {
					t.Errorf("%s: args refer to $(%s), which env does not define", tc.w.name, m[1])
				}
			}
		}
		for flag, want := range tc.wantVar {
			got, ok := flagValue(args, flag)
			if !ok || got != want {
				t.Errorf("%s: %s %q, want %q", tc.w.name, flag, got, want)
				continue
			}
			e := env[varRef.FindStringSubmatch(want)[1]]
			if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != tc.fields[flag] {
				t.Errorf("%s: %s must come from the downward API field %s", tc.w.name, e.Name, tc.fields[flag])
			}
		}
	}
}

// flagValue returns the argument after flag (Go's flag package also takes
// -flag=value, which the manifests do not use).
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// configKey maps a file path in w's container back to the ConfigMap key a
// configMap volume projects there, failing the test if none does.
func configKey(t *testing.T, c cluster, w workload, file string) string {
	t.Helper()
	ctr := w.container(t)
	m := mountOf(ctr, file)
	if m == nil {
		t.Errorf("%s: %s is on no volume mount", w.name, file)
		return ""
	}
	rel := strings.TrimPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
	for _, v := range w.pod.Spec.Volumes {
		if v.Name != m.Name || v.ConfigMap == nil {
			continue
		}
		data := find[*corev1.ConfigMap](t, c.all, "v1/ConfigMap", v.ConfigMap.Name).Data
		if len(v.ConfigMap.Items) == 0 { // every key becomes a file of its name
			if _, ok := data[rel]; ok {
				return rel
			}
		}
		for _, it := range v.ConfigMap.Items {
			if path.Clean(it.Path) == rel {
				return it.Key
			}
		}
	}
	t.Errorf("%s: no ConfigMap key is projected to %s", w.name, file)
	return ""
}

// checkMeshgwConfig checks one meshgw config file of the ConfigMap.
//
// For now it only checks that the file is a YAML mapping with the top-level
// keys its role needs: gateway/config does not know the control:, node: and
// identity: sections yet. Once it does, this should call config.Parse, which
// reports every unknown or invalid key with its line.
func checkMeshgwConfig(t *testing.T, name string, data []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Errorf("%s: %v", name, err)
		return nil
	}
	if doc == nil {
		t.Errorf("%s: empty, want a YAML mapping", name)
		return nil
	}
	want := map[string][]string{
		"control.yaml": {"rtsp", "control", "identity", "node", "routes"},
		"node.yaml":    {"rtsp", "identity", "node"},
	}[name]
	if want == nil {
		t.Errorf("%s: no meshgw role reads this key", name)
	}
	// The file must load exactly as `meshgw check` and the role would load it.
	cfg, err := config.Parse(name, data)
	if err != nil {
		t.Errorf("%s does not load: %v", name, err)
	} else if isNode := name == "node.yaml"; cfg.Node.IsNodeOnly() != isNode {
		t.Errorf("%s: node.control set = %v, want %v", name, cfg.Node.IsNodeOnly(), isNode)
	}
	for _, k := range want {
		if _, ok := doc[k]; !ok {
			t.Errorf("%s: no top-level %q", name, k)
		}
	}
	return doc
}

// lookup walks nested mappings of a decoded YAML document: lookup(doc,
// "rtsp", "listen").
func lookup(doc map[string]any, keys ...string) any {
	var v any = doc
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestMeshgwConfig checks the config files in the ConfigMap and that they
// agree with the manifests: the ports meshgw listens on are the ports the
// containers declare, and the node's control address is the Service.
func TestMeshgwConfig(t *testing.T) {
	c := load(t)
	docs := map[string]map[string]any{}
	for name, data := range c.config.Data {
		docs[name] = checkMeshgwConfig(t, name, []byte(data))
	}
	ctl, node := docs["control.yaml"], docs["node.yaml"]
	if ctl == nil || node == nil {
		t.Fatal("the ConfigMap needs control.yaml and node.yaml")
	}
	// node.yaml must not pin a name or a data address: the DaemonSet's
	// flags set them per host, and a value here would mislead a reader.
	for _, k := range []string{"name", "data_address"} {
		if lookup(node, "node", k) != nil {
			t.Errorf("node.yaml: node.%s is set; the DaemonSet passes it per host", k)
		}
	}

	ports := func(w workload) map[string]corev1.ContainerPort {
		m := map[string]corev1.ContainerPort{}
		for _, p := range w.container(t).Ports {
			m[p.Name] = p
		}
		return m
	}
	ws := c.workloads()
	ctlPorts, nodePorts := ports(ws[0]), ports(ws[1])
	checkPort := func(where string, got any, ps map[string]corev1.ContainerPort, name string, pr corev1.Protocol) {
		t.Helper()
		var n int
		switch v := got.(type) {
		case int:
			n = v
		case string: // a listen address, ":8554" or "host:8554"
			_, p, err := net.SplitHostPort(v)
			if err == nil {
				n, err = strconv.Atoi(p)
			}
			if err != nil {
				t.Errorf("%s: %q is no host:port", where, v)
				return
			}
		default:
			t.Errorf("%s: %v is no port", where, got)
			return
		}
		p, ok := ps[name]
		if !ok || int(p.ContainerPort) != n || proto(p.Protocol) != pr {
			t.Errorf("%s: %d/%s, but the container's port %q is %d/%s", where, n, pr, name, p.ContainerPort, proto(p.Protocol))
		}
	}
	checkPort("control.yaml rtsp.listen", lookup(ctl, "rtsp", "listen"), ctlPorts, "rtsp", corev1.ProtocolTCP)
	checkPort("control.yaml control.listen", lookup(ctl, "control", "listen"), ctlPorts, "grpc", corev1.ProtocolTCP)
	checkPort("control.yaml rtsp.rtp_port", lookup(ctl, "rtsp", "rtp_port"), ctlPorts, "rtp", corev1.ProtocolUDP)
	checkPort("control.yaml rtsp.rtcp_port", lookup(ctl, "rtsp", "rtcp_port"), ctlPorts, "rtcp", corev1.ProtocolUDP)
	checkPort("node.yaml rtsp.rtp_port", lookup(node, "rtsp", "rtp_port"), nodePorts, "rtp", corev1.ProtocolUDP)
	checkPort("node.yaml rtsp.rtcp_port", lookup(node, "rtsp", "rtcp_port"), nodePorts, "rtcp", corev1.ProtocolUDP)

	// node.control must be the Service's cluster DNS name and gRPC port.
	addr, _ := lookup(node, "node", "control").(string)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("node.yaml node.control %q: %v", addr, err)
	}
	wantHost := c.service.Name + "." + c.service.Namespace + ".svc.cluster.local"
	if host != wantHost {
		t.Errorf("node.yaml node.control host %q, want the Service's name %q", host, wantHost)
	}
	if sp := servicePort(c.service, "grpc"); sp == nil || strconv.Itoa(int(sp.Port)) != port || proto(sp.Protocol) != corev1.ProtocolTCP {
		t.Errorf("node.yaml node.control port %s is not the Service's grpc port", port)
	}

	td1, td2 := lookup(ctl, "identity", "trust_domain"), lookup(node, "identity", "trust_domain")
	if td1 != td2 || td1 == nil {
		t.Errorf("identity.trust_domain: control.yaml %v, node.yaml %v; they must be one trust domain", td1, td2)
	}
}

// spiffeTemplateData mirrors the data spire-controller-manager renders a
// ClusterSPIFFEID's templates with (pkg/spireentry templateData).
type spiffeTemplateData struct {
	TrustDomain   string
	ClusterName   string
	ClusterDomain string
	PodMeta       *metav1.ObjectMeta
	PodSpec       *corev1.PodSpec
	NodeMeta      *metav1.ObjectMeta
	NodeSpec      *corev1.NodeSpec
}

// TestSPIFFEIDs renders each ClusterSPIFFEID for the pods it selects, as
// spire-controller-manager would on a host named "worker-1", and checks that
// the control gets spiffe://<td>/meshgw/control, each node
// spiffe://<td>/meshgw/node/<Kubernetes node name>, and no pod gets both.
func TestSPIFFEIDs(t *testing.T) {
	c := load(t)
	var ctl map[string]any
	if err := yaml.Unmarshal([]byte(c.config.Data["control.yaml"]), &ctl); err != nil {
		t.Fatal(err)
	}
	td, _ := lookup(ctl, "identity", "trust_domain").(string)
	if td == "" {
		t.Fatal("control.yaml has no identity.trust_domain")
	}
	// The API server labels every namespace with its name; the manifest
	// need not.
	nsLabels := labels.Set{"kubernetes.io/metadata.name": c.namespace.Name}
	for k, v := range c.namespace.Labels {
		nsLabels[k] = v
	}
	const host = "worker-1"
	want := map[string]string{
		"Deployment " + controlName: "spiffe://" + td + "/meshgw/control",
		"DaemonSet " + nodeName:     "spiffe://" + td + "/meshgw/node/" + host,
	}
	for _, w := range c.workloads() {
		var got []string
		for _, m := range c.all {
			sid, ok := m.obj.(*clusterSPIFFEID)
			if !ok {
				continue
			}
			if !selects(t, m, sid.Spec.NamespaceSelector, nsLabels) || !selects(t, m, sid.Spec.PodSelector, w.pod.Labels) {
				continue
			}
			tmpl, err := template.New(m.String()).Parse(sid.Spec.SPIFFEIDTemplate)
			if err != nil {
				t.Errorf("%v: spiffeIDTemplate: %v", m, err)
				continue
			}
			pod := w.pod.DeepCopy()
			pod.Spec.NodeName = host // the scheduler sets it
			pod.Namespace = c.namespace.Name
			pod.Name = "meshgw-x7k2p" // the controller's generated pod name
			var buf bytes.Buffer
			err = tmpl.Execute(&buf, spiffeTemplateData{
				TrustDomain: td, ClusterName: "meshgw-test", ClusterDomain: "cluster.local",
				PodMeta: &pod.ObjectMeta, PodSpec: &pod.Spec,
				NodeMeta: &metav1.ObjectMeta{Name: host}, NodeSpec: &corev1.NodeSpec{},
			})
			if err != nil {
				t.Errorf("%v: rendering for %s: %v", m, w.name, err)
				continue
			}
			id, err := spiffeid.FromString(buf.String())
			if err != nil {
				t.Errorf("%v: rendered %q for %s: %v", m, buf.String(), w.name, err)
				continue
			}
			got = append(got, id.String())
		}
		switch {
		case len(got) == 0:
			t.Errorf("%s: no ClusterSPIFFEID selects its pods", w.name)
		case len(got) > 1:
			t.Errorf("%s: several ClusterSPIFFEIDs select its pods: %q", w.name, got)
		case got[0] != want[w.name]:
			t.Errorf("%s: SPIFFE ID %q, want %q", w.name, got[0], want[w.name])
		}
	}
}

// selects reports whether a ClusterSPIFFEID's selector matches set; a nil
// selector matches everything, as in spire-controller-manager.
func selects(t *testing.T, m manifest, ls *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	if ls == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Errorf("%v: selector: %v", m, err)
		return false
	}
	return sel.Matches(set)
}
