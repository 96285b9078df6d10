package provider

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
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

// serve serves srv on a socket of the test's own until the test ends.
func serve(t *testing.T, srv *Server) (context.Context, string) {
	socket := filepath.Join(t.TempDir(), "p.sock")
	ctx, cancel := context.WithCancel(context.Background())
	var ready atomic.Bool
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, []Socket{{Path: socket, Server: srv}}, &ready, time.Second) }()
	t.Cleanup(func() { cancel(); <-served })
	require.Eventually(t, ready.Load, 5*time.Second, 10*time.Millisecond)
	return ctx, socket
}

// TestPanicDoesNotStopTheServer: no real input should make the provider
// panic, so the fault is hand-made — a Mounter missing its Vault clients
// panics on a nil pointer in the middle of a mount. The mount answers
// Internal over the real socket and the server keeps serving.
func TestPanicDoesNotStopTheServer(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &Server{Log: log, BuildVersion: "test", Mounter: &Mounter{Log: log, Defaults: config.Defaults()}}
	ctx, socket := serve(t, srv)

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

// frameCounter counts the HTTP/2 frames, by type, that the server sends on
// a client's connection (the server sends frames only, no preface).
type frameCounter struct {
	net.Conn
	mu     sync.Mutex
	buf    []byte
	byType map[byte]int
}

func (c *frameCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p[:n]...)
	for len(c.buf) >= 9 { // length (3 bytes), type, flags, stream (4)
		size := 9 + int(binary.BigEndian.Uint32(append([]byte{0}, c.buf[:3]...)))
		if len(c.buf) < size {
			break
		}
		c.byType[c.buf[3]]++
		c.buf = c.buf[size:]
	}
	return n, err
}

func (c *frameCounter) count(frameType byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byType[frameType]
}

// TestRequestsCostNoPingRoundTrip: the server answers a request with its
// answer only. gRPC's default, estimating the bandwidth of the link, has
// the server send a window update and a PING after every request's data,
// which the driver must read and acknowledge: two more wake-ups on each
// side of every mount, over a socket on the same node.
func TestRequestsCostNoPingRoundTrip(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := &Server{Log: log, BuildVersion: "test", Mounter: &Mounter{Log: log, Defaults: config.Defaults()}}
	ctx, socket := serve(t, srv)

	counter := &frameCounter{byType: map[byte]int{}}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
			counter.Conn = c
			return counter, err
		}))
	require.NoError(t, err)
	defer conn.Close()
	client := v1alpha1.NewCSIDriverProviderClient(conn)
	const requests = 200
	for range requests {
		_, err := client.Mount(ctx, &v1alpha1.MountRequest{Attributes: `{"objects":"- {objectName: a, secretPath: kv/a}"}`, Secrets: "null", Permission: "420"})
		require.Equal(t, codes.InvalidArgument, status.Code(err))
	}
	const frameHeaders, framePing, frameWindowUpdate = 0x1, 0x6, 0x8
	assert.Equal(t, requests, counter.count(frameHeaders), "a failed mount's answer is one HEADERS frame")
	assert.LessOrEqual(t, counter.count(framePing), 2, "PINGs: at most acknowledgements of the client's own")
	assert.LessOrEqual(t, counter.count(frameWindowUpdate), 2, "window updates")
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
		{name: "login denied", err: errors.Join(auth.ErrLoginDenied, &vault.Error{Kind: vault.ErrInvalidRequest}), want: codes.PermissionDenied},
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
