package integration

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

const chartDir = "../../charts/vault-csi-provider"

// helmTemplate renders the chart with helm (built by build.sh) and returns
// its objects by kind.
func helmTemplate(t *testing.T, sets ...string) (map[string][]*unstructured.Unstructured, error) {
	t.Helper()
	args := []string{"template", "vcp", chartDir, "--namespace", providerNamespace}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(filepath.Join(rig.BinDir(), "helm"), args...).CombinedOutput()
	if err != nil {
		return nil, &helmError{string(out)}
	}
	objs := map[string][]*unstructured.Unstructured{}
	for _, doc := range strings.Split(string(out), "\n---") {
		var m map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(doc), &m))
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		objs[u.GetKind()] = append(objs[u.GetKind()], u)
	}
	return objs, nil
}

type helmError struct{ out string }

func (e *helmError) Error() string { return e.out }

func field(t *testing.T, u *unstructured.Unstructured, path ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	require.NoError(t, err)
	require.True(t, found, "%s has %v", u.GetKind(), path)
	return v
}

func container(t *testing.T, ds *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs := field(t, ds, "spec", "template", "spec", "containers").([]any)
	require.Len(t, cs, 1)
	return cs[0].(map[string]any)
}

func TestChartDefaults(t *testing.T) {
	objs, err := helmTemplate(t)
	require.NoError(t, err)
	require.Len(t, objs["DaemonSet"], 1)
	ds := objs["DaemonSet"][0]

	vols := field(t, ds, "spec", "template", "spec", "volumes").([]any)
	assert.Equal(t, "/var/run/vault-csi-provider", vols[0].(map[string]any)["hostPath"].(map[string]any)["path"], "a directory of its own, not the providers' shared one")
	assert.Equal(t, "RuntimeDefault", field(t, ds, "spec", "template", "spec", "securityContext", "seccompProfile", "type"))
	assert.Equal(t, "system-node-critical", field(t, ds, "spec", "template", "spec", "priorityClassName"), "evicted last, like the driver")
	assert.Equal(t, []any{map[string]any{"operator": "Exists"}}, field(t, ds, "spec", "template", "spec", "tolerations"), "on every node, tainted ones too")
	assert.Greater(t, field(t, ds, "spec", "template", "spec", "terminationGracePeriodSeconds"), 30.0, "above the 30 s drain")
	c := container(t, ds)
	sc := c["securityContext"].(map[string]any)
	assert.Equal(t, false, sc["privileged"])
	assert.Equal(t, false, sc["allowPrivilegeEscalation"])
	assert.Equal(t, true, sc["readOnlyRootFilesystem"])
	assert.Equal(t, []any{"ALL"}, sc["capabilities"].(map[string]any)["drop"])
	assert.Nil(t, sc["capabilities"].(map[string]any)["add"])
	assert.Equal(t, 65532.0, sc["runAsUser"], "not root")
	assert.Equal(t, true, sc["runAsNonRoot"])
	inits := field(t, ds, "spec", "template", "spec", "initContainers").([]any)
	require.Len(t, inits, 1)
	isc := inits[0].(map[string]any)["securityContext"].(map[string]any)
	assert.Equal(t, []any{"socket-dir", "/provider", "65532:65532"}, inits[0].(map[string]any)["args"])
	assert.Equal(t, map[string]any{"drop": []any{"ALL"}, "add": []any{"CHOWN"}}, isc["capabilities"], "the init container may only chown")
	require.Len(t, objs["Secret"], 1, "the chart creates the HMAC key Secret")
	assert.Equal(t, "keep", objs["Secret"][0].GetAnnotations()["helm.sh/resource-policy"])
	args := strings.Join(toStrings(c["args"]), " ")
	for _, a := range []string{"-endpoint=/provider/vault.sock", "-health-addr=:8080", "-metrics-addr=:8081", "-vault-mount=kubernetes", "-log-format=json"} {
		assert.Contains(t, args, a)
	}
	assert.NotContains(t, args, "-vault-addr", "no address unless set")
	assert.NotContains(t, args, "-token-request-fallback", "the provider mints no tokens by default")
	env, _ := json.Marshal(c["env"])
	assert.Contains(t, string(env), `"fieldPath":"spec.nodeName"`)
	assert.Contains(t, string(env), `{"name":"GOMAXPROCS","value":"1"}`, "one processor by default (docs/benchmarks.md)")
	assert.Contains(t, string(env), `{"name":"GOMEMLIMIT","valueFrom":{"resourceFieldRef":{"resource":"limits.memory"}}}`, "the collector knows the memory limit")
	assert.NotContains(t, string(env), "GOGC")
	assert.Equal(t, "/health/ready", c["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)["path"])

	rules, _ := json.Marshal(field(t, objs["ClusterRole"][0], "rules"))
	assert.JSONEq(t, `[{"apiGroups":[""],"resources":["pods"],"verbs":["list","watch"]},
		{"apiGroups":["secrets-store.csi.x-k8s.io"],"resources":["secretproviderclasses"],"verbs":["get","list","watch"]}]`, string(rules))
	rules, _ = json.Marshal(field(t, objs["Role"][0], "rules"))
	assert.JSONEq(t, `[{"apiGroups":[""],"resources":["secrets"],"resourceNames":["vault-csi-provider-hmac-key"],"verbs":["get","list","watch"]}]`, string(rules),
		"no create on Secrets: the chart made the key's")
	assert.Empty(t, objs["ServiceMonitor"], "off by default")
}

func TestChartOptions(t *testing.T) {
	objs, err := helmTemplate(t,
		"vault.address=https://vault.vault.svc:8200", "providersDir=/etc/kubernetes/secrets-store-csi-providers",
		"metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom", "dashboard.enabled=true",
		"image.digest=sha256:"+strings.Repeat("a", 64), "allowPodOverrides={vaultAddress}", "hostNetwork=true",
		"extraArgs={-vault-timeout=30s}", "priorityClassName=system-node-critical",
		"extraEnv[0].name=HTTPS_PROXY", "extraEnv[0].value=http://proxy:3128", "tokenRequestFallback=true",
		"goRuntime.gomaxprocs=", "goRuntime.gogc=200", "resources.limits.memory=null", "createHMACSecret=false",
		"extraVolumes[0].name=vault-tls", "extraVolumes[0].secret.secretName=vault-tls",
		"extraVolumeMounts[0].name=vault-tls", "extraVolumeMounts[0].mountPath=/vault/tls", "extraVolumeMounts[0].readOnly=true")
	require.NoError(t, err)
	ds := objs["DaemonSet"][0]
	c := container(t, ds)
	args := strings.Join(toStrings(c["args"]), " ")
	for _, a := range []string{"-vault-addr=https://vault.vault.svc:8200", "-allow-pod-overrides=vaultAddress", "-vault-timeout=30s", "-token-request-fallback"} {
		assert.Contains(t, args, a)
	}
	rules, _ := json.Marshal(field(t, objs["ClusterRole"][0], "rules"))
	assert.Contains(t, string(rules), `{"apiGroups":[""],"resources":["serviceaccounts/token"],"verbs":["create"]}`, "the right to mint tokens comes only with the fallback")
	rules, _ = json.Marshal(field(t, objs["Role"][0], "rules"))
	assert.Contains(t, string(rules), `{"apiGroups":[""],"resources":["secrets"],"verbs":["create"]}`, "the provider creates its key Secret")
	assert.Empty(t, objs["Secret"])
	assert.Equal(t, "vault-csi-provider@sha256:"+strings.Repeat("a", 64), c["image"])
	env, _ := json.Marshal(c["env"])
	assert.Contains(t, string(env), `{"name":"HTTPS_PROXY","value":"http://proxy:3128"}`, "extraEnv after the downward-API variables")
	assert.Contains(t, string(env), `{"name":"GOGC","value":"200"}`)
	assert.NotContains(t, string(env), "GOMAXPROCS", "empty: Go's default, which follows a CPU limit")
	assert.NotContains(t, string(env), "GOMEMLIMIT", "no memory limit, no GOMEMLIMIT")
	assert.Equal(t, true, field(t, ds, "spec", "template", "spec", "hostNetwork"))
	assert.Equal(t, "system-node-critical", field(t, ds, "spec", "template", "spec", "priorityClassName"))
	vols := field(t, ds, "spec", "template", "spec", "volumes").([]any)
	assert.Equal(t, "/etc/kubernetes/secrets-store-csi-providers", vols[0].(map[string]any)["hostPath"].(map[string]any)["path"])
	vj, _ := json.Marshal(vols[1:])
	assert.JSONEq(t, `[{"name":"vault-tls","secret":{"secretName":"vault-tls"}}]`, string(vj), "extraVolumes after the providers directory")
	mj, _ := json.Marshal(c["volumeMounts"].([]any)[1:])
	assert.JSONEq(t, `[{"name":"vault-tls","mountPath":"/vault/tls","readOnly":true}]`, string(mj), "the CA or client certificate reaches the container")

	require.Len(t, objs["ServiceMonitor"], 1)
	sm := objs["ServiceMonitor"][0]
	assert.Equal(t, "prom", sm.GetLabels()["release"])
	ep := field(t, sm, "spec", "endpoints").([]any)[0].(map[string]any)
	assert.Equal(t, "metrics", ep["port"])
	assert.Equal(t, "/metrics", ep["path"])
	dash := field(t, objs["ConfigMap"][0], "data", "vault-csi-provider.json").(string)
	assert.True(t, json.Valid([]byte(dash)), "the dashboard ConfigMap holds the dashboard JSON")
}

func TestChartSchemaRejectsBadValues(t *testing.T) {
	for _, set := range []string{"logLevel=loud", "vault.address=vault:8200", "cacheSize=-1", "allowPodOverrides={roleName}", "image.digest=latest", "extraVolumeMounts[0].mountPath=relative", "goRuntime.gomaxprocs=0"} {
		_, err := helmTemplate(t, set)
		require.Error(t, err, set)
		assert.Contains(t, err.Error(), strings.FieldsFunc(set, func(r rune) bool { return r == '=' || r == '.' || r == '[' })[0], set)
	}
}

// serviceMonitorCRD is enough of prometheus-operator's CRD for a dry run.
const serviceMonitorCRD = `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"servicemonitors.monitoring.coreos.com"},
 "spec":{"group":"monitoring.coreos.com","scope":"Namespaced",
  "names":{"plural":"servicemonitors","singular":"servicemonitor","kind":"ServiceMonitor","listKind":"ServiceMonitorList"},
  "versions":[{"name":"v1","served":true,"storage":true,"schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}`

// TestChartServerSideDryRun: every object the chart renders, with every
// option on, is accepted by a real kube-apiserver (dry run, nothing stored).
func TestChartServerSideDryRun(t *testing.T) {
	ctx := context.Background()
	rc := env.Kube.AdminClient.Discovery().RESTClient()
	_, err := rc.Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").SetHeader("Content-Type", "application/json").Body([]byte(serviceMonitorCRD)).DoRaw(ctx)
	require.NoError(t, err)
	objs, err := helmTemplate(t, "vault.address=https://vault:8200", "metrics.serviceMonitor.enabled=true", "dashboard.enabled=true", "hostNetwork=true")
	require.NoError(t, err)

	for kind, list := range objs {
		for _, u := range list {
			assert.NoError(t, createObject(t, u, true), "%s %s", kind, u.GetName())
		}
	}
}

// dynamicFor is the dynamic client for u's kind, namespaced as u is.
func dynamicFor(t *testing.T, u *unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.Kube.Admin)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(env.Kube.AdminClient.Discovery()))
	gvk := u.GroupVersionKind()
	var mapping *meta.RESTMapping
	require.Eventually(t, func() bool { // a CRD just created takes a moment to be served
		mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			mapper.Reset()
		}
		return err == nil
	}, 10*time.Second, 100*time.Millisecond, "the apiserver serves %s", gvk)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = providerNamespace
		}
		return dyn.Resource(mapping.Resource).Namespace(ns)
	}
	return dyn.Resource(mapping.Resource)
}

func metav1CreateOptions(dryRun bool) metav1.CreateOptions {
	if dryRun {
		return metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	}
	return metav1.CreateOptions{}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
