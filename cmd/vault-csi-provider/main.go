// Command vault-csi-provider is the Vault provider for the Kubernetes Secrets
// Store CSI driver. It runs on every node and serves the driver's provider
// protocol on a unix socket.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vaultcsi/vault-csi-provider/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vault-csi-provider:", err)
		os.Exit(1)
	}
}
