package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// imageIndex is `make image`'s OCI image index (IMAGE_INDEX).
const imageIndex = "../../bin/vault-csi-provider-oci.tar"

// platforms hashicorp ships, with each one's ELF machine and qemu-user
// command ("" for this machine's own).
var platforms = []struct {
	arch    string
	machine elf.Machine
	qemu    string
}{
	{"amd64", elf.EM_X86_64, ""},
	{"arm64", elf.EM_AARCH64, "qemu-aarch64"},
	{"s390x", elf.EM_S390, "qemu-s390x"},
	{"ppc64le", elf.EM_PPC64, "qemu-ppc64le"},
}

// ociLayout is an OCI image layout read from a tarball, every blob checked
// against its digest as it is read.
type ociLayout struct{ files map[string][]byte }

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
	Annotations map[string]string `json:"annotations"`
}

func readLayout(t *testing.T, path string) ociLayout {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: make test runs make image first", path)
		}
		t.Skipf("%s is missing: run make image to build it", path)
	}
	require.NoError(t, err)
	defer f.Close()
	l := ociLayout{files: map[string][]byte{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return l
		}
		require.NoError(t, err)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			l.files[filepath.Clean(h.Name)] = b
		}
	}
}

// blob returns d's content, after checking its size and digest.
func (l ociLayout) blob(t *testing.T, d descriptor) []byte {
	t.Helper()
	hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
	require.True(t, ok, "digest %q", d.Digest)
	b, ok := l.files["blobs/sha256/"+hexDigest]
	require.True(t, ok, "blob %s is in the layout", d.Digest)
	sum := sha256.Sum256(b)
	require.Equal(t, hexDigest, hex.EncodeToString(sum[:]), "blob %s matches its digest", d.Digest)
	require.EqualValues(t, d.Size, len(b), "blob %s has its size", d.Digest)
	return b
}

func (l ociLayout) json(t *testing.T, d descriptor, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(l.blob(t, d), v))
}

// binaryIn returns /vault-csi-provider of a gzip'd layer, and whether
// /etc/passwd names the nonroot user.
func binaryIn(t *testing.T, layer []byte) ([]byte, bool) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	require.NoError(t, err)
	var bin []byte
	var nonroot bool
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return bin, nonroot
		}
		require.NoError(t, err)
		switch h.Name {
		case "vault-csi-provider":
			assert.EqualValues(t, 0o755, h.Mode)
			bin, err = io.ReadAll(tr)
			require.NoError(t, err)
		case "etc/passwd":
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			nonroot = strings.Contains(string(b), "nonroot:x:65532:65532:")
		}
	}
}

// TestImageIndexServesEveryArchitecture: `make image`'s index holds one
// image per platform hashicorp ships, each with its own binary (of that
// machine), the entrypoint and the nonroot user; each foreign binary runs
// under Debian's qemu-user (no binfmt on the host), and the arm64 one serves
// a real mount from the https Vault.
func TestImageIndexServesEveryArchitecture(t *testing.T) {
	l := readLayout(t, imageIndex)
	var top struct{ Manifests []descriptor }
	require.NoError(t, json.Unmarshal(l.files["index.json"], &top))
	require.Len(t, top.Manifests, 1, "index.json names the image index")
	assert.Contains(t, top.Manifests[0].Annotations["org.opencontainers.image.ref.name"], "vault-csi-provider:")
	var idx struct{ Manifests []descriptor }
	l.json(t, top.Manifests[0], &idx)
	require.Len(t, idx.Manifests, len(platforms))
	dir := t.TempDir()
	for i, p := range platforms {
		d := idx.Manifests[i]
		require.NotNil(t, d.Platform, p.arch)
		assert.Equal(t, "linux/"+p.arch, d.Platform.OS+"/"+d.Platform.Architecture)
		var m struct {
			Config descriptor
			Layers []descriptor
		}
		l.json(t, d, &m)
		var cfg struct {
			Architecture, OS string
			Config           struct {
				User       string
				Entrypoint []string
			}
		}
		l.json(t, m.Config, &cfg)
		assert.Equal(t, p.arch, cfg.Architecture)
		assert.Equal(t, "65532:65532", cfg.Config.User, "%s runs as nonroot", p.arch)
		assert.Equal(t, []string{"/vault-csi-provider"}, cfg.Config.Entrypoint)
		require.Len(t, m.Layers, 1)
		bin, nonroot := binaryIn(t, l.blob(t, m.Layers[0]))
		assert.True(t, nonroot, "%s: /etc/passwd has the nonroot user", p.arch)
		exe, err := elf.NewFile(bytes.NewReader(bin))
		require.NoError(t, err, p.arch)
		assert.Equal(t, p.machine, exe.Machine, "%s: the binary is built for its machine", p.arch)
		path := filepath.Join(dir, p.arch)
		require.NoError(t, os.WriteFile(path, bin, 0o755))

		cmd := runOn(t, p.qemu, path, "-version")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s", p.arch, out)
		assert.Contains(t, string(out), "vault-csi-provider ", p.arch)
	}
	mountUnder(t, "qemu-aarch64", filepath.Join(dir, "arm64"))
}

// runOn is the command running binary on this machine, or under qemu.
func runOn(t *testing.T, qemu, binary string, args ...string) *exec.Cmd {
	t.Helper()
	if qemu == "" {
		return exec.Command(binary, args...)
	}
	return exec.Command(filepath.Join(rig.BinDir(), qemu), append([]string{binary}, args...)...)
}

// mountUnder runs the provider binary under qemu as the DaemonSet would and
// mounts a secret from the https Vault through its socket.
func mountUnder(t *testing.T, qemu, binary string) {
	dir, err := os.MkdirTemp("", "vcp-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "vault.sock")
	cmd := runOn(t, qemu, binary, "-endpoint="+socket, "-health-addr=", "-metrics-addr=",
		"-vault-addr="+env.Vault.TLS.Addr, "-vault-tls-ca-cert="+env.Vault.TLS.CAFile, "-kubeconfig="+env.Kube.AdminKubeconfig)
	p := serveBinary(t, cmd, socket)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	resp, err := p.client.Mount(ctx, mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": passwordObject}, tokenAudiences: []string{"vault"}}.request(t))
	require.NoError(t, err, p.logs.String())
	assert.Equal(t, plantedPassword, string(resp.Files[0].Contents))
	fmt.Printf("arch: a mount served by the arm64 binary under %s in %s\n", qemu, time.Since(start).Round(time.Millisecond))
	p.stop(t)
}

// servedBinary is a provider binary running as its own process.
type servedBinary struct {
	cmd    *exec.Cmd
	client v1alpha1.CSIDriverProviderClient
	logs   *syncBuffer
}

// serveBinary starts cmd, a provider serving socket, with the provider's
// namespace in its environment, and returns once the socket answers.
func serveBinary(t *testing.T, cmd *exec.Cmd, socket string) *servedBinary {
	t.Helper()
	cmd.Args = append(cmd.Args, "-hmac-secret-name="+dnsName("hmac-"+t.Name())) // not the chart's, which its test creates
	cmd.Env = []string{"POD_NAMESPACE=" + providerNamespace}
	p := &servedBinary{cmd: cmd, logs: &syncBuffer{}}
	cmd.Stderr = p.logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	p.client = v1alpha1.NewCSIDriverProviderClient(conn)
	require.Eventually(t, func() bool {
		_, err := p.client.Version(context.Background(), &v1alpha1.VersionRequest{Version: "v1alpha1"})
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "%s serves its socket: %s", cmd.Path, p.logs)
	return p
}

// stop sends SIGTERM, as the kubelet does, and expects a clean exit.
func (p *servedBinary) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.cmd.Wait(), "clean exit on SIGTERM: %s", p.logs.String())
}
