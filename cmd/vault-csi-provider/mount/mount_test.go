package mount

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

func TestTokenClaims(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":["vault"],"sub":"system:serviceaccount:demo:app","exp":4102444800,
		"kubernetes.io":{"namespace":"demo","pod":{"name":"web","uid":"u-1"},"serviceaccount":{"name":"app"}}}`))
	c, err := tokenClaims("eyJhbGciOiJSUzI1NiJ9." + payload + ".c2ln")
	require.NoError(t, err)
	assert.Equal(t, "demo", c.Kubernetes.Namespace)
	assert.Equal(t, "web", c.Kubernetes.Pod.Name)
	assert.Equal(t, "app", c.Kubernetes.ServiceAccount.Name)
	assert.Equal(t, int64(4102444800), c.expiry().Unix())

	for _, bad := range []string{"not-a-jwt", "a.!!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + ".c"} {
		_, err := tokenClaims(bad)
		assert.Error(t, err, bad)
	}
}

func TestPodClass(t *testing.T) {
	store := func(name, class string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
			Driver: "secrets-store.csi.k8s.io", VolumeAttributes: map[string]string{"secretProviderClass": class}}}}
	}
	other := corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	pod := func(v ...corev1.Volume) *corev1.Pod { return &corev1.Pod{Spec: corev1.PodSpec{Volumes: v}} }

	class, err := podClass(pod(other, store("secrets", "app")), "")
	require.NoError(t, err)
	assert.Equal(t, "app", class)

	two := pod(store("a", "class-a"), store("b", "class-b"))
	_, err = podClass(two, "")
	assert.ErrorContains(t, err, "several secrets-store volumes (a, b): choose one with --volume")
	class, err = podClass(two, "b")
	require.NoError(t, err)
	assert.Equal(t, "class-b", class)
	_, err = podClass(two, "c")
	assert.ErrorContains(t, err, `no secrets-store volume "c"`)
	_, err = podClass(pod(other), "")
	assert.ErrorContains(t, err, "has no secrets-store.csi.k8s.io volume")
}
