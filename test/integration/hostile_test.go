package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// chartMemoryLimit is the chart's resources.limits.memory.
const chartMemoryLimit = 128 << 20

// TestHostileTenantsUnderTheChartsMemoryLimit runs the provider binary as
// the chart does (GOMAXPROCS=1, GOMEMLIMIT from its limit) in a memory
// cgroup of the chart's 128 MiB, and sends it what a hostile class or pod
// author can: TLS files that are devices, a "Vault" answering with an
// endless header, with 8 MiB answers streamed slowly to four mounts of eight
// objects at once, or with a redirect to another host, and a template that
// calls itself. Each is refused with its code; after each, another
// namespace's mount of the real Vault succeeds; the kernel never kills the
// provider. The "Vaults" here are servers on 127.0.0.1 because a real Vault
// cannot be made to answer so; the pods' attributes are sent as the driver
// would, with -allow-pod-overrides=* standing in for classes the apiserver
// does not hold.
func TestHostileTenantsUnderTheChartsMemoryLimit(t *testing.T) {
	cg := newMemoryCgroup(t, chartMemoryLimit)
	dir, err := os.MkdirTemp("", "vcp-cg-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := os.Getenv("VCP_TEST_PROVIDER_BIN") // another build's binary, to compare
	if bin == "" {
		bin = filepath.Join(dir, "vault-csi-provider")
		out, err := exec.Command("go", "build", "-o", bin, "../../cmd/vault-csi-provider").CombinedOutput()
		require.NoError(t, err, string(out))
	}
	socket := filepath.Join(dir, "vault.sock")
	cmd := cg.command(bin, "-endpoint="+socket, "-health-addr=", "-metrics-addr=", "-vault-addr="+env.Vault.Addr,
		"-kubeconfig="+env.Kube.AdminKubeconfig, "-allow-pod-overrides=*", "-vault-timeout=10s")
	cmd.Env = []string{"POD_NAMESPACE=" + providerNamespace, "GOMAXPROCS=1", "GOMEMLIMIT=" + strconv.Itoa(chartMemoryLimit)}
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := v1alpha1.NewCSIDriverProviderClient(conn)
	require.Eventually(t, func() bool {
		_, err := client.Version(context.Background(), &v1alpha1.VersionRequest{})
		return err == nil
	}, 15*time.Second, 20*time.Millisecond, "%s", logs)

	hostilePod, victimPod := createPod(t, appServiceAccount), createPod(t, appServiceAccount)
	mount := func(params map[string]string, namespace string) error {
		req := mountCall{pod: hostilePod, params: params, tokenAudiences: []string{"vault"}}.request(t)
		if namespace == "" {
			req = mountCall{pod: victimPod, params: params, tokenAudiences: []string{"vault"}}.request(t)
		} else {
			var attrs map[string]string
			require.NoError(t, json.Unmarshal([]byte(req.Attributes), &attrs))
			attrs["csi.storage.k8s.io/pod.namespace"] = namespace
			req.Attributes = mustJSON(t, attrs)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := client.Mount(ctx, req)
		return err
	}
	fake := fakeVault(t)
	for _, c := range []struct {
		name   string
		params map[string]string
		mounts int
		code   codes.Code
		says   string
	}{
		{"CA from /dev/zero", map[string]string{"vaultAddress": "https://127.0.0.1:1", "vaultCACertPath": "/dev/zero"}, 1, codes.InvalidArgument, "is not a regular file"},
		{"client key from /dev/zero", map[string]string{"vaultAddress": "https://127.0.0.1:1", "vaultTLSClientCertPath": "/dev/zero", "vaultTLSClientKeyPath": "/dev/zero"}, 1, codes.InvalidArgument, "is not a regular file"},
		{"CA directory /dev", map[string]string{"vaultAddress": "https://127.0.0.1:1", "vaultCADirectory": "/dev"}, 1, codes.InvalidArgument, "vaultCADirectory"},
		{"an endless header", map[string]string{"vaultAddress": fake.URL + "/header"}, 1, codes.Unavailable, "header"},
		{"4 mounts x 8 answers of 8 MiB, slowly", map[string]string{"vaultAddress": fake.URL + "/big", "objects": objectsOf(8)}, 4, codes.ResourceExhausted, "bytes"},
		{"a redirect to another host", map[string]string{"vaultAddress": fake.URL + "/redirect"}, 1, codes.PermissionDenied, "-allowed-vault-addresses"},
		{"the metadata address", map[string]string{"vaultAddress": "http://169.254.169.254"}, 1, codes.PermissionDenied, "link-local or cloud metadata"},
		{"a template calling itself", map[string]string{"objects": "- objectName: x\n  template: '{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}'\n"}, 1, codes.InvalidArgument, "calls itself"},
	} {
		params := map[string]string{"roleName": kubeRole, "objects": passwordObject}
		for k, v := range c.params {
			params[k] = v
		}
		var wg sync.WaitGroup
		for range c.mounts {
			wg.Go(func() {
				err := mount(params, "hostile")
				assert.Equal(t, c.code, status.Code(err), "%s: %v", c.name, err)
				assert.Contains(t, status.Convert(err).Message(), c.says, c.name)
			})
		}
		wg.Wait()
		require.NoError(t, mount(map[string]string{"roleName": kubeRole, "objects": passwordObject}, ""), "%s: another namespace's mount right after; the provider's log:\n%s", c.name, lastLines(logs.String(), 30))
		t.Logf("%s: peak memory of the provider's cgroup so far %.1f MiB (limit %d MiB)", c.name, float64(cg.peak(t))/(1<<20), chartMemoryLimit>>20)
	}
	select {
	case err := <-exited:
		t.Fatalf("the provider exited: %v\n%s", err, logs)
	default:
	}
	assert.Zero(t, cg.oomKills(t), "no OOM kill")
	assert.Less(t, cg.peak(t), int64(chartMemoryLimit))
}

// objectsOf is n objects, each its own secret.
func objectsOf(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {objectName: o%d, secretPath: secret/data/o%d, secretKey: v}\n", i, i)
	}
	return b.String()
}

// fakeVault answers every login and, by the address's first path element,
// reads with an endless header, 8 MiB answers at 8 MiB/s, or a redirect to
// 127.0.0.2.
func fakeVault(t *testing.T) *httptest.Server {
	elsewhere, err := net.Listen("tcp", "127.0.0.2:0")
	require.NoError(t, err)
	other := &httptest.Server{Listener: elsewhere, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"data":{"password":"from the metadata service"}}`)
	})}}
	other.Start()
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch {
		case strings.HasSuffix(rest, "/login"):
			_, _ = io.WriteString(w, `{"auth":{"client_token":"hvs.fake","lease_duration":3600}}`)
		case strings.HasPrefix(rest, "v1/auth/token/"):
			w.WriteHeader(http.StatusNoContent)
		case kind == "header":
			c, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			endless(buf, "HTTP/1.1 200 OK\r\nX-Endless: ", 256<<20)
		case kind == "big":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":{"data":{"v":"`)
			chunk := strings.Repeat("a", 64<<10)
			for range 128 { // 8 MiB in a second
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(8 * time.Millisecond)
			}
			_, _ = io.WriteString(w, `"}}}`)
		case kind == "redirect":
			http.Redirect(w, r, other.URL+"/latest/meta-data/iam", http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// endless writes head then size bytes of one header value.
func endless(w *bufio.ReadWriter, head string, size int) {
	_, _ = w.WriteString(head)
	chunk := strings.Repeat("a", 64<<10)
	for sent := 0; sent < size; sent += len(chunk) {
		if _, err := w.WriteString(chunk); err != nil {
			return
		}
		if w.Flush() != nil {
			return
		}
	}
}

// memoryCgroup is a memory cgroup of this machine (v1 or v2) under this
// process's own, limited to a number of bytes, swap off.
type memoryCgroup struct {
	dir string
	v2  bool
}

func newMemoryCgroup(t *testing.T, limit int64) *memoryCgroup {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	require.NoError(t, err)
	var cg *memoryCgroup
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		switch {
		case len(parts) == 3 && strings.Contains(","+parts[1]+",", ",memory,"):
			cg = &memoryCgroup{dir: filepath.Join("/sys/fs/cgroup/memory", parts[2])}
		case len(parts) == 3 && parts[0] == "0" && parts[1] == "" && cg == nil:
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				cg = &memoryCgroup{dir: filepath.Join("/sys/fs/cgroup", parts[2]), v2: true}
			}
		}
	}
	if cg == nil {
		missing(t, "a memory cgroup (v1 memory controller or cgroup v2) to run the provider under the chart's limit")
	}
	cg.dir = filepath.Join(cg.dir, fmt.Sprintf("vcp-test-%d", os.Getpid()))
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		missing(t, "a memory cgroup the tests may create ("+err.Error()+"): run them as root")
	}
	t.Cleanup(func() {
		for range 50 { // the killed provider leaves it a moment later
			if os.Remove(cg.dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	limitFile, swapFile, swap := "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", strconv.FormatInt(limit, 10)
	if cg.v2 {
		limitFile, swapFile, swap = "memory.max", "memory.swap.max", "0"
	}
	require.NoError(t, os.WriteFile(filepath.Join(cg.dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644))
	_ = os.WriteFile(filepath.Join(cg.dir, swapFile), []byte(swap), 0o644) // absent where swap is not accounted
	return cg
}

// command runs bin in the cgroup from its first instruction.
func (c *memoryCgroup) command(bin string, args ...string) *exec.Cmd {
	return exec.Command("/bin/sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(c.dir, "cgroup.procs"), bin}, args...)...)
}

// peak is the most memory the cgroup used.
func (c *memoryCgroup) peak(t *testing.T) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(c.read(t, "memory.max_usage_in_bytes", "memory.peak")), 10, 64)
	require.NoError(t, err)
	return n
}

// oomKills counts the processes the kernel killed in the cgroup.
func (c *memoryCgroup) oomKills(t *testing.T) int {
	for _, line := range strings.Split(c.read(t, "memory.oom_control", "memory.events"), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// read is the cgroup's file v1 (or v2 on cgroup v2).
func (c *memoryCgroup) read(t *testing.T, v1, v2 string) string {
	name := v1
	if c.v2 {
		name = v2
	}
	b, err := os.ReadFile(filepath.Join(c.dir, name))
	require.NoError(t, err)
	return string(b)
}

// missing fails the test in CI and skips it elsewhere, saying what it needs.
func missing(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("missing prerequisite in CI: %s", what)
	}
	t.Skipf("needs %s", what)
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
