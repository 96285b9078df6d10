package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

const manifestFile = "../../manifests/vault-csi-provider.yaml"

// renderManifests is the chart's default output, as a plain file, but for
// the HMAC key Secret: a file shared by everyone cannot hold a key, so the
// provider creates it (createHMACSecret=false).
func renderManifests(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(rig.BinDir(), "helm"), "template", "vault-csi-provider", chartDir, "--namespace", providerNamespace,
		"--set", "createHMACSecret=false").CombinedOutput()
	require.NoError(t, err, string(out))
	return "# Generated from charts/vault-csi-provider with its default values but\n" +
		"# createHMACSecret=false (the provider creates its key Secret):\n" +
		"#   UPDATE_MANIFESTS=1 go test ./test/integration -run TestManifestsMatchChart\n" +
		"# Edit the chart, not this file.\n" +
		"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + providerNamespace + "\n" + string(out)
}

// TestManifestsMatchChart keeps manifests/ equal to the chart's default output.
func TestManifestsMatchChart(t *testing.T) {
	want := renderManifests(t)
	if os.Getenv("UPDATE_MANIFESTS") != "" {
		require.NoError(t, os.WriteFile(manifestFile, []byte(want), 0o644))
	}
	got, err := os.ReadFile(manifestFile)
	require.NoError(t, err)
	assert.Equal(t, want, string(got), "manifests/vault-csi-provider.yaml is stale: run UPDATE_MANIFESTS=1 go test ./test/integration -run TestManifestsMatchChart")
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var objs []*unstructured.Unstructured
	for _, doc := range strings.Split(string(raw), "\n---") {
		var m map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(doc), &m), path)
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs
}

// TestManifestsAndExamplesOnTheAPIServer: the plain manifests and every
// example are accepted by a real kube-apiserver (namespaces and service
// accounts are created, the rest dry-run), and every example class passes
// the provider's own parameter checks.
func TestManifestsAndExamplesOnTheAPIServer(t *testing.T) {
	files, err := filepath.Glob("../../manifests/examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	files = append([]string{manifestFile}, files...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var rest []*unstructured.Unstructured
			for _, u := range readObjects(t, f) {
				switch u.GetKind() {
				case "Namespace", "ServiceAccount":
					err := createObject(t, u, false)
					if !apierrors.IsAlreadyExists(err) {
						require.NoError(t, err)
					}
				case "SecretProviderClass":
					params, _, err := unstructured.NestedStringMap(u.Object, "spec", "parameters")
					require.NoError(t, err)
					provider, _, _ := unstructured.NestedString(u.Object, "spec", "provider")
					dialect, ok := spc.DialectNamed(provider)
					require.True(t, ok, "class %s: spec.provider %q", u.GetName(), provider)
					_, err = spc.Parser{Dialect: dialect}.Check(params)
					assert.NoError(t, err, "class %s", u.GetName())
					rest = append(rest, u)
				default:
					rest = append(rest, u)
				}
			}
			for _, u := range rest {
				assert.NoError(t, createObject(t, u, true), "%s %s", u.GetKind(), u.GetName())
			}
		})
	}
}

// createObject creates u on the rig's apiserver, as a dry run when dryRun.
func createObject(t *testing.T, u *unstructured.Unstructured, dryRun bool) error {
	t.Helper()
	ri := dynamicFor(t, u)
	opts := metav1CreateOptions(dryRun)
	_, err := ri.Create(context.Background(), u, opts)
	return err
}
