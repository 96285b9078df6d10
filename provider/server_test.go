package provider

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/provider/render"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// TestPanicDoesNotStopTheServer: no real input should make the provider
// panic, so the fault is hand-made — a Mounter missing its Vault clients
// panics on a nil pointer in the middle of a mount. The mount answers
// Internal over the real socket and the server keeps serving.
func TestPanicDoesNotStopTheServer(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &Server{Log: log, BuildVersion: "test", Mounter: &Mounter{Log: log, Defaults: config.Defaults()}}
	socket := filepath.Join(t.TempDir(), "p.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var ready atomic.Bool
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, socket, srv, &ready, time.Second) }()
	t.Cleanup(func() { cancel(); <-served })
	require.Eventually(t, ready.Load, 5*time.Second, 10*time.Millisecond)

	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := v1alpha1.NewCSIDriverProviderClient(conn)

	_, err = client.Mount(ctx, &v1alpha1.MountRequest{
		Attributes: `{"roleName":"app","objects":"- {objectName: a, secretPath: kv/a}"}`, Secrets: "null", Permission: "420",
	})
	assert.Equal(t, codes.Internal, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "provider's logs")

	resp, err := client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
	require.NoError(t, err, "the server still serves after a panic")
	assert.Equal(t, "test", resp.RuntimeVersion)
}

// TestMountErrorCarriesCode: the response returned with an error names the
// gRPC code in error.code, and the status carries the message.
func TestMountErrorCarriesCode(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &Server{Log: log, Mounter: &Mounter{Log: log}}
	resp, err := srv.Mount(context.Background(), &v1alpha1.MountRequest{Attributes: `{"objects":"- {objectName: a, secretPath: kv/a}"}`, Secrets: "null", Permission: "420"})
	require.Error(t, err)
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "roleName: missing")
	require.NotNil(t, resp.GetError())
	assert.Equal(t, "InvalidArgument", resp.GetError().GetCode())
}

func TestCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{name: "parameters", err: spc.ErrInvalidParameters, want: codes.InvalidArgument},
		{name: "login denied", err: withKind(ErrLoginDenied, &vault.Error{Kind: vault.ErrInvalidRequest}), want: codes.PermissionDenied},
		{name: "read denied", err: &vault.Error{Kind: vault.ErrPermissionDenied}, want: codes.PermissionDenied},
		{name: "token request forbidden", err: auth.ErrTokenRequestForbidden, want: codes.PermissionDenied},
		{name: "vault down", err: &vault.Error{Kind: vault.ErrUnavailable}, want: codes.Unavailable},
		{name: "vault deadline", err: &vault.Error{Kind: vault.ErrUnavailable, Err: context.DeadlineExceeded}, want: codes.DeadlineExceeded},
		{name: "not found", err: &vault.Error{Kind: vault.ErrNotFound}, want: codes.NotFound},
		{name: "too large", err: render.ErrTooLarge, want: codes.ResourceExhausted},
		{name: "template budget", err: fmt.Errorf("object %q: template: %w", "x", render.ErrBudget), want: codes.ResourceExhausted},
		{name: "no token", err: auth.ErrNoToken, want: codes.FailedPrecondition},
		{name: "anything else", err: io.ErrUnexpectedEOF, want: codes.Internal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Code(tc.err))
		})
	}
}
