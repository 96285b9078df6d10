// Package integration tests the provider end to end against a real Vault dev
// server and a real kube-apiserver on a real etcd (test/rig, built by
// test/tools/build.sh). The provider runs in-process (app.Run, with its real
// flags) and is called through a real gRPC client on a unix socket; its
// files are written by the driver's own writer.
package integration

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/vaultcsi/vault-csi-provider/test/rig"
)

// env is shared by every test: the components start once.
var env *rig.Rig

// Names from the rig's standard set-up.
const (
	appNamespace        = rig.AppNamespace
	appServiceAccount   = rig.AppServiceAccount
	otherServiceAccount = rig.OtherServiceAccount
	providerNamespace   = rig.ProviderNamespace
	kubeRole            = rig.KubeRole
	customAudRole       = rig.CustomAudRole
	customAudience      = rig.CustomAudience
	jwtRole             = rig.JWTRole
	shortTTLRole        = rig.ShortTTLRole
	plantedPassword     = rig.PlantedPassword
	oldPassword         = rig.OldPassword
	legacyPassword      = rig.LegacyPassword
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if missing := rig.Missing(); missing != "" {
		msg := fmt.Sprintf("integration tests need %s: run make test-deps (test/tools/build.sh) to build Vault and the kube-apiserver", missing)
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "FAIL:", msg)
			return 1
		}
		fmt.Fprintln(os.Stderr, "SKIP:", msg)
		return 0
	}
	dir, err := os.MkdirTemp("", "vcp-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	env, err = rig.Start(ctx, dir)
	defer func() {
		env.Stop()
		if os.Getenv("VCP_KEEP_TEST_DIR") == "" {
			os.RemoveAll(dir)
		}
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "integration: etcd, kube-apiserver and vault ready in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), dir)
	return m.Run()
}
