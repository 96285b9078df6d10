package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vaultcsi/vault-csi-provider/vault"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// requestsFor builds n driver requests spread over pods pods.
func requestsFor(t *testing.T, n, pods int, objects string) []*v1alpha1.MountRequest {
	t.Helper()
	calls := make([]mountCall, pods)
	for i := range calls {
		calls[i] = mountCall{pod: createPod(t, appServiceAccount), params: map[string]string{"roleName": kubeRole, "objects": objects}, tokenAudiences: []string{"vault"}}
	}
	reqs := make([]*v1alpha1.MountRequest, n)
	for i := range reqs {
		if i < pods {
			reqs[i] = calls[i].request(t)
		} else {
			reqs[i] = reqs[i%pods]
		}
	}
	return reqs
}

// TestThousandConcurrentMounts: 1,000 mounts at once (50 pods) all succeed,
// and afterwards the provider's goroutines and heap are back near where they
// started.
func TestThousandConcurrentMounts(t *testing.T) {
	p := startProvider(t)
	reqs := requestsFor(t, 1000, 50, kvObjects)
	// One mount first so that lazily started parts (HMAC key, connections) count in the baseline.
	_, err := p.client.Mount(context.Background(), reqs[0])
	require.NoError(t, err)
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			resp, err := p.client.Mount(context.Background(), req)
			if err == nil && len(resp.Files) != 9 {
				err = assert.AnError
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}

	var after runtime.MemStats
	// Back to the baseline but for the connections to Vault kept for reuse:
	// at most vault.IdleConnsPerVault, net/http's transport holding a
	// reading and a writing goroutine for each.
	kept := 2 * vault.IdleConnsPerVault
	assert.Eventually(t, func() bool {
		runtime.GC()
		return runtime.NumGoroutine() <= goroutines+10+kept
	}, 30*time.Second, 100*time.Millisecond, "goroutines back to baseline (%d) and at most %d for kept connections", goroutines, kept)
	runtime.ReadMemStats(&after)
	t.Logf("reliability: 1000 concurrent mounts, goroutines %d -> %d, heap %.1f -> %.1f MiB", goroutines, runtime.NumGoroutine(),
		float64(before.HeapAlloc)/(1<<20), float64(after.HeapAlloc)/(1<<20))
	assert.Less(t, after.HeapAlloc, before.HeapAlloc+32<<20, "heap back near baseline")
}

// TestProviderKilledDuringBurst: the provider process is killed in the
// middle of a burst. Every mount either returned complete files or failed
// with an error the driver retries; after a restart every mount succeeds.
func TestProviderKilledDuringBurst(t *testing.T) {
	dir, err := os.MkdirTemp("", "vcp-kill-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "vault-csi-provider")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/vault-csi-provider").CombinedOutput()
	require.NoError(t, err, string(out))
	socket := filepath.Join(dir, "vault.sock")
	startBinary := func() *exec.Cmd {
		cmd := exec.Command(bin, "-endpoint="+socket, "-health-addr=", "-metrics-addr=", "-vault-addr="+env.Vault.Addr, "-kubeconfig="+env.Kube.AdminKubeconfig)
		cmd.Env = []string{"POD_NAMESPACE=" + providerNamespace}
		require.NoError(t, cmd.Start())
		return cmd
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := v1alpha1.NewCSIDriverProviderClient(conn)
	waitServing := func() {
		require.Eventually(t, func() bool {
			_, err := client.Version(context.Background(), &v1alpha1.VersionRequest{})
			return err == nil
		}, 15*time.Second, 20*time.Millisecond)
	}

	reqs := requestsFor(t, 200, 100, kvObjects)
	cmd := startBinary()
	waitServing()
	results := make([]error, len(reqs))
	completed := make(chan struct{}, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			resp, err := client.Mount(ctx, req)
			if err == nil {
				// A response is all or nothing: complete files the driver can write.
				if len(resp.Files) != 9 || len(resp.ObjectVersion) != 9 {
					err = assert.AnError
				} else {
					err = fileutil.WritePayloads(t.TempDir(), resp.Files)
				}
				if err != nil {
					results[i] = err
					return
				}
				completed <- struct{}{}
			}
			results[i] = err
		})
	}
	for range 20 { // kill it mid-burst: some mounts done, most in flight
		select {
		case <-completed:
		case <-time.After(20 * time.Second):
			t.Fatal("no mounts completed")
		}
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	wg.Wait()
	ok, failed := 0, 0
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded:
			failed++ // what the driver retries
		default:
			t.Errorf("a mount failed uncleanly: %v", err)
		}
	}

	start := time.Now()
	cmd = startBinary()
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	waitServing()
	for _, req := range reqs {
		_, err := client.Mount(context.Background(), req)
		require.NoError(t, err, "after the restart every mount succeeds")
	}
	t.Logf("reliability: provider killed during 200 mounts: %d completed, %d failed with Unavailable; restarted and all 200 served again in %s", ok, failed, time.Since(start).Round(time.Millisecond))
}

// TestWarmMountsReuseConnections: a pod's warm mounts of ten secrets (read
// eight at a time) open no new connection to Vault: the connections of the
// first mount are kept and reused, so a TLS Vault does not shake hands
// again on every mount. Connections are counted by a TCP proxy in front of
// the real Vault.
func TestWarmMountsReuseConnections(t *testing.T) {
	var objects strings.Builder
	for i := range 10 {
		path := fmt.Sprintf("secret/data/conn-%d", i)
		_, err := env.Vault.Root.Logical().Write(path, map[string]any{"data": map[string]any{"v": fmt.Sprint(i)}})
		require.NoError(t, err)
		fmt.Fprintf(&objects, "- {objectName: s%d, secretPath: %s, secretKey: v}\n", i, path)
	}
	proxy := startSlowProxy(t, strings.TrimPrefix(env.Vault.Addr, "http://"), 0)
	p := startProvider(t, "-allow-pod-overrides=vaultAddress")
	call := mountCall{pod: createPod(t, appServiceAccount), tokenAudiences: []string{"vault"},
		params: map[string]string{"roleName": kubeRole, "objects": objects.String(), "vaultAddress": proxy.addr}}
	for range 3 { // login, the first reads, their connections
		_, err := p.mount(t, call)
		require.NoError(t, err)
	}
	opened := len(proxy.seen)
	for range 20 {
		resp, err := p.mount(t, call)
		require.NoError(t, err)
		require.Len(t, resp.Files, 10)
	}
	assert.Equal(t, opened, len(proxy.seen), "new connections to Vault over 20 warm mounts")
}
