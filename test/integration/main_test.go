// Package integration tests the provider end to end against a real Vault dev
// server and a real kube-apiserver on a real etcd, built by
// test/tools/build.sh. The provider runs in-process (app.Run, with its real
// flags) and is called through a real gRPC client on a unix socket; its
// files are written by the driver's own writer.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// env is shared by every test: the components start once.
var env struct {
	dir   string
	kube  *apiServer
	vault *vaultServer
	// reviewerJWT lets Vault call TokenReview.
	reviewerJWT string
}

func binDir() string {
	if d := os.Getenv("VCP_TEST_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "vcp-test", "bin")
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bins := binDir()
	for _, b := range []string{"vault", "kube-apiserver", "etcd", "plugins/kubernetes"} {
		if _, err := os.Stat(filepath.Join(bins, b)); err != nil {
			msg := fmt.Sprintf("integration tests need %s: run test/tools/build.sh (or make test-deps) to build Vault and the kube-apiserver", filepath.Join(bins, b))
			if os.Getenv("CI") != "" {
				fmt.Fprintln(os.Stderr, "FAIL:", msg)
				return 1
			}
			fmt.Fprintln(os.Stderr, "SKIP:", msg)
			return 0
		}
	}
	dir, err := os.MkdirTemp("", "vcp-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.dir = dir
	defer func() {
		env.vault.stop()
		env.kube.stop()
		if os.Getenv("VCP_KEEP_TEST_DIR") == "" {
			os.RemoveAll(dir)
		}
	}()

	start := time.Now()
	kubeReady := make(chan error, 1)
	go func() {
		var err error
		env.kube, err = startAPIServer(dir, bins)
		kubeReady <- err
	}()
	if env.vault, err = startVault(dir, bins, "vault"); err != nil {
		fmt.Fprintln(os.Stderr, "vault:", err)
		return 1
	}
	if err := <-kubeReady; err != nil {
		fmt.Fprintln(os.Stderr, "kube-apiserver:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := bootstrap(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bootstrap:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "integration: etcd, kube-apiserver and vault ready in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), dir)
	return m.Run()
}
