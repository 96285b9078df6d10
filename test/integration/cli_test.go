package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultcsi/vault-csi-provider/cmd/vault-csi-provider/mount"
	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// runMount runs `vault-csi-provider mount ARGS...` in-process and returns
// its output.
func runMount(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	getenv := func(string) string { return "" }
	err := mount.Run(context.Background(), args, getenv, &out, &out)
	return out.String(), err
}

// TestTroubleshootingCLI: `vault-csi-provider mount` performs one mount
// outside the driver, from a class file and a token file or from a pod in the
// cluster, explains each step and writes the files; secrets and tokens never
// reach its output.
func TestTroubleshootingCLI(t *testing.T) {
	kvPut(t, "cli/app", map[string]any{"password": "cli-s3cret"})
	objects := "- {objectName: password, secretPath: secret/data/cli/app, secretKey: password}\n"
	dir := t.TempDir()
	class := filepath.Join(dir, "class.yaml")
	require.NoError(t, os.WriteFile(class, []byte(`apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: cli, namespace: `+appNamespace+`}
spec:
  provider: vault
  parameters:
    roleName: `+kubeRole+`
    objects: |
      `+objects), 0o600))

	t.Run("class and token files", func(t *testing.T) {
		tok, err := env.KubeletToken(context.Background(), createPod(t, appServiceAccount), "vault")
		require.NoError(t, err)
		tokenFile := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(tokenFile, []byte(tok.Token+"\n"), 0o600))
		out := t.TempDir()
		output, err := runMount(t, "--class", class, "--token-file", tokenFile, "--out", out, "--vault-addr", env.Vault.Addr)
		require.NoError(t, err, output)
		for _, want := range []string{
			"class:  " + appNamespace + "/cli",
			"token:  audience [vault], subject system:serviceaccount:" + appNamespace + ":" + appServiceAccount,
			"vault:  " + env.Vault.Addr + " (--vault-addr), login at auth/kubernetes/login with role \"" + kubeRole + "\"",
			"logged in to vault",
			"vault call method=GET path=secret/data/cli/app status=2xx",
			"password                       0644     10 bytes",
		} {
			assert.Contains(t, output, want)
		}
		assert.NotContains(t, output, "cli-s3cret")
		assert.NotContains(t, output, tok.Token)
		assert.Equal(t, "cli-s3cret", readFile(t, out, "password"))
	})

	t.Run("a pod in the cluster", func(t *testing.T) {
		require.NoError(t, env.CreateClass(context.Background(), "cli-pod", map[string]string{"roleName": kubeRole, "objects": objects}))
		pod, err := env.Kube.AdminClient.CoreV1().Pods(appNamespace).Create(context.Background(), &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "cli-stuck"},
			Spec: corev1.PodSpec{
				ServiceAccountName: appServiceAccount,
				Containers:         []corev1.Container{{Name: "app", Image: "busybox"}},
				Volumes: []corev1.Volume{{Name: "secrets", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
					Driver: "secrets-store.csi.k8s.io", VolumeAttributes: map[string]string{"secretProviderClass": "cli-pod"},
				}}}},
			},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = env.DeletePod(context.Background(), rig.Pod{Name: pod.Name, Namespace: pod.Namespace})
		})
		out := t.TempDir()
		output, err := runMount(t, "--pod", appNamespace+"/cli-stuck", "--kubeconfig", env.Kube.AdminKubeconfig, "--out", out, "--vault-addr", env.Vault.Addr)
		require.NoError(t, err, output)
		assert.Contains(t, output, "pod:    "+appNamespace+"/cli-stuck (uid "+string(pod.UID)+")")
		assert.Contains(t, output, "expires")
		assert.Equal(t, "cli-s3cret", readFile(t, out, "password"))
	})

	t.Run("--vault-addr replaces a class address this machine cannot reach", func(t *testing.T) {
		inCluster := filepath.Join(t.TempDir(), "class.yaml")
		require.NoError(t, os.WriteFile(inCluster, []byte(strings.Replace(readFileString(t, class),
			"    roleName:", "    vaultAddress: https://vault.vault.svc.invalid:8200\n    roleName:", 1)), 0o600))
		tok, err := env.KubeletToken(context.Background(), createPod(t, appServiceAccount), "vault")
		require.NoError(t, err)
		tokenFile := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(tokenFile, []byte(tok.Token), 0o600))
		out := t.TempDir()
		output, err := runMount(t, "--class", inCluster, "--token-file", tokenFile, "--out", out, "--vault-addr", env.Vault.Addr)
		require.NoError(t, err, output)
		assert.Contains(t, output, "vault:  "+env.Vault.Addr+" (--vault-addr, in place of the class's https://vault.vault.svc.invalid:8200)")
		assert.Equal(t, "cli-s3cret", readFile(t, out, "password"))
	})

	t.Run("a denied login explains itself", func(t *testing.T) {
		tok, err := env.KubeletToken(context.Background(), createPod(t, otherServiceAccount), "vault")
		require.NoError(t, err)
		tokenFile := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(tokenFile, []byte(tok.Token), 0o600))
		output, err := runMount(t, "--class", class, "--token-file", tokenFile, "--out", t.TempDir(), "--vault-addr", env.Vault.Addr)
		require.Error(t, err)
		assert.Contains(t, output, "FAILED after")
		assert.Contains(t, output, "(gRPC code PermissionDenied)")
		assert.Contains(t, output, `denied login for service account `+appNamespace+`/`+otherServiceAccount)
	})

	t.Run("bad input names the flag", func(t *testing.T) {
		junk := filepath.Join(t.TempDir(), "token")
		require.NoError(t, os.WriteFile(junk, []byte("not-a-jwt"), 0o600))
		output, err := runMount(t, "--class", class, "--token-file", junk, "--out", t.TempDir())
		require.Error(t, err, output)
		assert.Contains(t, err.Error(), "--token-file")
		assert.Contains(t, err.Error(), "not a JWT")
		_, err = runMount(t, "--out", t.TempDir())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "either --class with --token-file or --pod")
	})
}
