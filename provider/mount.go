package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/lease"
	"github.com/vaultcsi/vault-csi-provider/metrics"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// MaxResponseBytes is the largest MountResponse the driver accepts by default.
const MaxResponseBytes = 4 << 20

// ErrTooLarge means the files do not fit in one response to the driver.
var ErrTooLarge = errors.New("mount response too large")

// KeySource gives the HMAC key for object versions.
type KeySource interface {
	Key(ctx context.Context) []byte
}

// Mounter turns MountRequests into files. It is safe for concurrent use; the
// state it shares between mounts lives in Clients, Sessions and Keys.
type Mounter struct {
	Defaults config.Vault // environment and flag layers
	Clients  *vault.Clients
	Sessions *auth.Sessions
	Tokens   auth.TokenSource
	Keys     KeySource
	// Leases keeps leased responses per pod and object; nil reads every time.
	Leases *lease.Cache
	// Overrides decides which sensitive parameters pods may set.
	Overrides OverridePolicy
	// Metrics may be nil.
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// ReadConcurrency bounds parallel reads within one mount.
	ReadConcurrency int
}

// mount holds one mount's resolved inputs.
type mount struct {
	params Params
	cfg    config.Vault
	id     auth.Identity
	idKey  string // id.Key(), computed once
	log    *slog.Logger
}

// Mount reads every object of the request from Vault and returns the files.
func (m *Mounter) Mount(ctx context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	params, err := parseRequest(req.GetAttributes(), req.GetSecrets(), req.GetPermission())
	if err != nil {
		return nil, err
	}
	if err := m.Overrides.check(ctx, params); err != nil {
		return nil, err
	}
	cfg := config.Layers(m.Defaults, params.Vault)
	log := m.Log.With("pod", params.Pod.String(), "class", params.Class, "role", params.Role)
	if len(params.Unknown) > 0 {
		log.Warn("ignoring unknown SecretProviderClass parameters or object fields: check their spelling",
			"unknown", params.Unknown, "known_parameters", knownParameters, "known_object_fields", knownObjectFields)
	}
	// Several addresses: try them in order, moving on only while Vault is unavailable.
	var err2 error
	addresses := config.SplitAddresses(cfg.Address)
	for i, addr := range addresses {
		mt := mount{params: params, cfg: cfg, log: log}
		mt.cfg.Address = addr
		mt.id = auth.Identity{Vault: mt.cfg, Role: params.Role, Audience: params.Audience, Pod: params.Pod}
		mt.idKey = mt.id.Key()
		base, err := m.Clients.Get(mt.cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidParameters, err)
		}
		bodies, err := m.readWithSession(ctx, mt, base)
		if err == nil {
			return m.respond(ctx, mt, bodies)
		}
		err2 = err
		if !errors.Is(err, vault.ErrUnavailable) || ctx.Err() != nil || i == len(addresses)-1 {
			break
		}
		log.Warn("vault unavailable; trying the next address", "addr", addr, "next", addresses[i+1], "error", err)
	}
	return nil, err2
}

// readWithSession logs in (or reuses the cached token) and reads every
// object. A cached token Vault no longer accepts is dropped and the reads are
// retried once with a new login.
func (m *Mounter) readWithSession(ctx context.Context, mt mount, base *api.Client) (map[string][]byte, error) {
	login := func(ctx context.Context) (vault.Session, error) {
		tok, err := m.Tokens.Token(ctx, mt.params.Pod, mt.params.Audience, mt.params.Tokens)
		if err != nil {
			return vault.Session{}, fmt.Errorf("pod %s: %w", mt.params.Pod, err)
		}
		sess, err := vault.Login(ctx, base, mt.cfg.AuthMount, mt.params.Role, tok.Value)
		m.Metrics.VaultRequest("login", vault.StatusClass(err))
		if err != nil {
			return vault.Session{}, explainLogin(err, mt)
		}
		mt.log.Debug("logged in to vault", "mount", mt.cfg.AuthMount, "ttl", sess.TTL)
		return sess, nil
	}
	sess, fresh, err := m.Sessions.Get(ctx, mt.id, login)
	if err != nil {
		return nil, err
	}
	bodies, err := m.readAll(ctx, mt, sess)
	if err != nil && !fresh && vault.IsPermissionDenied(err) {
		mt.log.Info("vault refused the cached token; logging in again")
		m.Sessions.Forget(mt.id)
		if sess, _, err = m.Sessions.Get(ctx, mt.id, login); err != nil {
			return nil, err
		}
		bodies, err = m.readAll(ctx, mt, sess)
	}
	return bodies, err
}

// readAll fetches each distinct request once, in parallel up to
// ReadConcurrency, and returns the bodies by request key.
func (m *Mounter) readAll(ctx context.Context, mt mount, sess vault.Session) (map[string][]byte, error) {
	unique := map[string]vault.Request{}
	for _, o := range mt.params.Objects {
		unique[requestKey(o)] = vaultRequest(o)
	}
	var mu sync.Mutex
	bodies := make(map[string][]byte, len(unique))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(m.ReadConcurrency, 1))
	for key, r := range unique {
		g.Go(func() error {
			body, err := m.read(gctx, mt, sess, key, r)
			if err != nil {
				return explainRead(err, mt, r)
			}
			mu.Lock()
			bodies[key] = body
			mu.Unlock()
			return nil
		})
	}
	return bodies, g.Wait()
}

// read makes one request, or answers it from the lease cache.
func (m *Mounter) read(ctx context.Context, mt mount, sess vault.Session, key string, r vault.Request) ([]byte, error) {
	readNow := func(ctx context.Context) ([]byte, error) {
		body, err := vault.Do(ctx, sess.Client, r)
		m.Metrics.VaultRequest("read", vault.StatusClass(err))
		return body, err
	}
	if m.Leases == nil {
		return readNow(ctx)
	}
	renew := func(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error) {
		ttl, err := vault.RenewLease(ctx, sess.Client, leaseID, increment)
		m.Metrics.VaultRequest("lease_renew", vault.StatusClass(err))
		return ttl, err
	}
	body, outcome, err := m.Leases.Get(ctx, mt.params.Pod.UID, mt.idKey+" "+key, renew, readNow)
	if err == nil {
		mt.log.Debug("vault request", "method", r.Method, "path", r.Path, "answer", outcome)
		m.Metrics.CacheEvent("lease", map[lease.Outcome]string{lease.Reused: "hit", lease.Renewed: "renewal", lease.Read: "miss"}[outcome])
	}
	return body, err
}

// respond builds the files and versions from the bodies read.
func (m *Mounter) respond(ctx context.Context, mt mount, bodies map[string][]byte) (*v1alpha1.MountResponse, error) {
	key := m.Keys.Key(ctx)
	resp := &v1alpha1.MountResponse{}
	for _, o := range mt.params.Objects {
		ex, err := extract(o, bodies[requestKey(o)])
		if err != nil {
			return nil, err
		}
		mode := mt.params.DefaultMode
		if o.Mode != nil {
			mode = fs.FileMode(*o.Mode)
		}
		resp.Files = append(resp.Files, &v1alpha1.File{Path: o.Name, Mode: int32(mode), Contents: ex.content})
		resp.ObjectVersion = append(resp.ObjectVersion, &v1alpha1.ObjectVersion{Id: o.Name, Version: objectVersion(key, o, mode, ex.versioned)})
	}
	if size := proto.Size(resp); size > MaxResponseBytes {
		return nil, fmt.Errorf("%w: the files total %d bytes, over the driver's %d; largest objects: %s: split them across volumes or select single keys with secretKey",
			ErrTooLarge, size, MaxResponseBytes, largest(resp.Files, 3))
	}
	return resp, nil
}

func largest(files []*v1alpha1.File, n int) string {
	sorted := append([]*v1alpha1.File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i].Contents) > len(sorted[j].Contents) })
	var parts []string
	for _, f := range sorted[:min(n, len(sorted))] {
		parts = append(parts, fmt.Sprintf("%s (%d bytes)", f.Path, len(f.Contents)))
	}
	return strings.Join(parts, ", ")
}

// vaultRequest is the call an object makes.
func vaultRequest(o Object) vault.Request {
	r := vault.Request{Method: o.Method, Path: o.apiPath, Query: o.query}
	if o.Method != http.MethodGet {
		r.Body = o.Args
	}
	return r
}

// requestKey is equal for objects that make the same call; secretArgs count,
// so two PKI certificates with different common names are two requests. It
// is a hash: secretArgs may hold values that must not sit in a cache key.
func requestKey(o Object) string {
	r := vaultRequest(o)
	args, _ := json.Marshal(r.Body) // JSON-shaped data from YAML: cannot fail
	sum := sha256.Sum256([]byte(r.Method + " " + r.Path + "?" + r.Query.Encode() + " " + string(args)))
	return hex.EncodeToString(sum[:])
}
