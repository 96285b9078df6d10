package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/cache"
	"github.com/vaultcsi/vault-csi-provider/fair"
	"github.com/vaultcsi/vault-csi-provider/metrics"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// RuntimeName is what Version reports.
const RuntimeName = "vault-csi-provider"

// grpcWindow is the HTTP/2 flow-control window of the connection and streams.
const grpcWindow = 1 << 20

// Server is the CSIDriverProvider gRPC service.
type Server struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	Mounter      *Mounter
	Log          *slog.Logger
	BuildVersion string
	// MountTimeout bounds one mount, inside the kubelet's 2 minutes.
	MountTimeout time.Duration
	// Parser holds the bounds of every request (-max-objects).
	Parser spc.Parser
	// MountConcurrency bounds the driver's calls to 4 times it (HTTP/2
	// streams; the driver's further calls wait on its side), served
	// MountConcurrency at once through Mounts. 0: no bound.
	MountConcurrency int
	// Mounts, if set, are the mount slots namespaces share (MountConcurrency,
	// fair.Share of them to one namespace): a mount waits for its namespace's turn, so one
	// whose Vault never answers does not hold every slot. The driver may
	// open MountConcurrency*4 streams: mounts waiting hold no more than
	// their parsed request.
	Mounts *fair.Slots
}

// Version answers the driver's handshake.
func (s *Server) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: RuntimeName, RuntimeVersion: s.BuildVersion}, nil
}

// Mount serves one mount. On failure the gRPC status's code says what kind
// of problem it is and its message (the pod's FailedMount event) what to
// fix; the response carries the code in error.code too.
func (s *Server) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	if s.MountTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.MountTimeout)
		defer cancel()
	}
	start := time.Now()
	params, err := s.Parser.Parse(req.GetAttributes(), req.GetSecrets(), req.GetPermission())
	if err == nil && s.Mounts != nil {
		var release func()
		if release, err = s.Mounts.Acquire(ctx, params.Pod.Namespace); err == nil {
			defer release()
		} else {
			err = fmt.Errorf("waiting for a turn to mount (-mount-concurrency=%d at once, %d of namespace %s): %w", s.Mounts.Size(), s.Mounts.Share(), params.Pod.Namespace, err)
		}
	}
	code, bytes := codes.Internal, 0 // Internal unless the mount returns: a panic is recovered above us
	done := s.Mounter.Metrics.MountStarted(s.Parser.Provider())
	defer func() { done(code.String(), time.Since(start), bytes) }()
	var resp *v1alpha1.MountResponse
	if err == nil {
		resp, err = s.Mounter.Mount(ctx, params)
	}
	fields := []any{"pod", params.Pod.Name, "namespace", params.Pod.Namespace, "class", params.Class, "duration", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		code = Code(err)
		if errors.Is(err, cache.ErrPanicked) {
			s.Mounter.Metrics.Panic()
		}
		msg := params.Words.Speak(err.Error()) // in the class's names: baoAddress, not vaultAddress
		s.Log.Warn("mount failed", append(fields, "code", code.String(), "error", msg)...)
		return &v1alpha1.MountResponse{Error: &v1alpha1.Error{Code: code.String()}}, status.Error(code, msg)
	}
	code = codes.OK
	for _, f := range resp.Files {
		bytes += len(f.Contents)
	}
	s.Log.Info("mount succeeded", append(fields, "objects", len(resp.Files), "bytes", bytes)...)
	return resp, nil
}

// recoverPanics answers Internal instead of letting a panic take the
// provider down; the panic value, which may hold request data, is not logged.
func recoverPanics(log *slog.Logger, m *metrics.Metrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				m.Panic()
				log.Error("panic while serving a request", "method", info.FullMethod, "panic_type", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "the vault provider failed unexpectedly while serving this request; the provider's logs have the stack trace")
			}
		}()
		return handler(ctx, req)
	}
}

// Socket is one provider name's unix socket and the server behind it.
type Socket struct {
	Path   string
	Server *Server
}

// Serve listens on every socket until ctx ends, then stops accepting, lets
// in-flight mounts finish (up to drain), and removes the sockets. ready is
// set while they are served.
func Serve(ctx context.Context, sockets []Socket, ready *atomic.Bool, drain time.Duration) error {
	var servers []*grpc.Server
	served := make(chan error, len(sockets))
	for _, sock := range sockets {
		lis, err := listen(sock.Path)
		if err != nil {
			for _, g := range servers {
				g.Stop()
			}
			return err
		}
		defer os.Remove(sock.Path)
		g := grpc.NewServer(sock.Server.options()...)
		v1alpha1.RegisterCSIDriverProviderServer(g, sock.Server)
		servers = append(servers, g)
		go func() {
			if err := g.Serve(lis); err != nil {
				served <- fmt.Errorf("grpc server on %s: %w", sock.Path, err)
			}
		}()
		sock.Server.Log.Info("serving", "endpoint", sock.Path, "provider", sock.Server.Parser.Provider())
	}
	ready.Store(true)
	log := sockets[0].Server.Log
	select {
	case err := <-served:
		ready.Store(false)
		for _, g := range servers {
			g.Stop()
		}
		return err
	case <-ctx.Done():
	}
	ready.Store(false)
	log.Info("shutting down: finishing in-flight mounts", "grace", drain)
	stopped := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, g := range servers {
			wg.Go(g.GracefulStop)
		}
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(drain):
		log.Warn("in-flight mounts did not finish in time; stopping")
		for _, g := range servers {
			g.Stop()
		}
	}
	return nil
}

// listen replaces a stale socket at endpoint with a new listener.
func listen(endpoint string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(endpoint), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := os.Remove(endpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket %s: %w", endpoint, err)
	}
	lis, err := net.Listen("unix", endpoint)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", endpoint, err)
	}
	return lis, nil
}

// options are the gRPC server's.
func (s *Server) options() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(recoverPanics(s.Log, s.Mounter.Metrics)),
		// Mounts run on goroutines kept from one request to the next (one
		// per processor; more mounts at once get a goroutine each): a new
		// goroutine grows its stack through the request's decoding and
		// Vault call, copying it several times.
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
		// Fixed flow-control windows. With the default (grown by estimating
		// the link's bandwidth-delay product) the server answers every
		// request's data with a window update and a PING, which the driver
		// has to read and acknowledge: two wake-ups on each side per mount,
		// for a socket on the same node where the window never needs to
		// grow (TestRequestsCostNoPingRoundTrip).
		grpc.InitialWindowSize(grpcWindow),
		grpc.InitialConnWindowSize(grpcWindow),
	}
	if s.MountConcurrency > 0 {
		// HTTP/2's own bound on the streams of a connection: the driver
		// holds one connection per provider, and a client past the bound
		// waits for a stream before it sends.
		opts = append(opts, grpc.MaxConcurrentStreams(uint32(4*s.MountConcurrency)))
	}
	return opts
}
