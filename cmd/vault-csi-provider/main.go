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
	switch {
	case len(args) > 0 && args[0] == "mount": // the troubleshooting command
		run, args = mount.Run, args[1:]
	case len(args) > 0 && args[0] == "socket-dir": // the chart's init container
		run, args = socketDir, args[1:]
	}
	err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vault-csi-provider:", err)
		os.Exit(1)
	}
}
