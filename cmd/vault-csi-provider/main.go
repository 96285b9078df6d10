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
	"github.com/vaultcsi/vault-csi-provider/cmd/vault-csi-provider/mount"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	run, args := app.Run, os.Args[1:]
	if len(args) > 0 && args[0] == "mount" { // the troubleshooting command
		run, args = mount.Run, args[1:]
	}
	err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vault-csi-provider:", err)
		os.Exit(1)
	}
}
