package provider

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/cache"
	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/fair"
	"github.com/vaultcsi/vault-csi-provider/lease"
	"github.com/vaultcsi/vault-csi-provider/metrics"
	"github.com/vaultcsi/vault-csi-provider/provider/render"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// KeySource gives the HMAC key for object versions.
type KeySource interface {
	Key(ctx context.Context) []byte
}

// Mounter turns MountRequests into files; safe for concurrent use.
type Mounter struct {
	Defaults config.Vault // environment and flag layers
	Clients  *vault.Clients
	Sessions *auth.Sessions
	Keys     KeySource
	// Leases keeps leased responses per pod and object; nil reads every time.
	Leases *lease.Cache
	// Overrides decides which sensitive parameters pods may set.
	Overrides OverridePolicy
	// Pods checks requests' pod attributes; nil checks nothing.
	Pods PodDirectory
	// Metrics may be nil.
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// ReadConcurrency bounds parallel reads within one mount.
	ReadConcurrency int
	// TemplateLimits bound each template's execution; zero is
	// render.DefaultLimits.
	TemplateLimits render.Limits
	// MountMaxBytes bounds the Vault answers one mount holds together
	// (-mount-max-bytes); zero is DefaultMountMaxBytes.
	MountMaxBytes int64
	// AnswersMaxBytes bounds the Vault answers all mounts hold together
	// (-answers-max-bytes); zero is DefaultAnswersMaxBytes.
	AnswersMaxBytes int64

	kv KVPaths

	limitsOnce sync.Once
	templates  *fair.Slots
	answers    *fair.Bytes
}

// limits makes the node-wide bounds on first use: template slots, half the
// processors the provider may run on (GOMAXPROCS), one per namespace at a
// time, and the answers' bytes.
func (m *Mounter) limits() (*fair.Slots, *fair.Bytes) {
	m.limitsOnce.Do(func() {
		m.templates = fair.NewSlots(runtime.GOMAXPROCS(0)/2, 1)
		m.answers = fair.NewBytes(cmp.Or(m.AnswersMaxBytes, DefaultAnswersMaxBytes))
	})
	return m.templates, m.answers
}

// DefaultAnswersMaxBytes is Mounter.AnswersMaxBytes when it is not set.
const DefaultAnswersMaxBytes = 32 << 20

// mount holds one mount's resolved inputs.
type mount struct {
	params spc.Params
	cfg    config.Vault
	id     auth.Identity
	idKey  string // id.Key(), computed once
	// connKey is cfg.ConnectionKey(), computed once.
	connKey string
	log     *slog.Logger
	leased  atomic.Bool // without a lease cache: an answer had a lease

	holdMu sync.Mutex
	held   int64 // bytes of Vault answers held, in m.answers too
	ended  bool  // released: a read still running (a shared lease load) holds no more
}

// errMountEnded stops a read that outlived its mount (a shared lease load).
var errMountEnded = errors.New("the mount that started this read has ended")

// hold reserves n bytes of an answer from path against the mount's bound
// and the node's, before they are read.
func (m *Mounter) hold(mt *mount, path string) func(n int64) error {
	limit := m.mountMaxBytes()
	return func(n int64) error {
		mt.holdMu.Lock()
		defer mt.holdMu.Unlock()
		switch {
		case mt.ended:
			return errMountEnded
		case mt.held+n > limit:
			return fmt.Errorf("%w: this mount's Vault answers take more than %d bytes (the provider's -mount-max-bytes), at %s: read fewer or smaller secrets, or split them over several volumes",
				render.ErrTooLarge, limit, path)
		}
		_, answers := m.limits()
		if err := answers.Hold(mt.params.Pod.Namespace, n); err != nil {
			return err
		}
		mt.held += n
		return nil
	}
}

// release gives back what the mount held, once its answer is built; any
// read still running for it is refused more.
func (m *Mounter) release(mt *mount) {
	mt.holdMu.Lock()
	defer mt.holdMu.Unlock()
	if mt.held > 0 {
		_, answers := m.limits()
		answers.Release(mt.params.Pod.Namespace, mt.held)
	}
	mt.held, mt.ended = 0, true
}

// Mount reads every object of a parsed request from Vault and returns the files.
func (m *Mounter) Mount(ctx context.Context, params spc.Params) (*v1alpha1.MountResponse, error) {
	if err := m.checkPod(ctx, params.Pod); err != nil {
		return nil, err
	}
	if err := m.Overrides.check(ctx, params); err != nil {
		return nil, err
	}
	cfg := config.Layers(m.Defaults, params.Vault)
	log := m.Log.With("pod", params.Pod.String(), "class", params.Class, "role", params.Role)
	if len(params.Unknown) > 0 {
		log.Warn("ignoring unknown SecretProviderClass parameters or object fields: check their spelling",
			"unknown", params.Unknown, "known_parameters", spc.KnownParameters, "known_object_fields", spc.KnownObjectFields)
	}
	// Several addresses: try them in order, moving on only while Vault is unavailable.
	var err2 error
	addresses := config.SplitAddresses(cfg.Address)
	for i, addr := range addresses {
		// One per address, shared by pointer: the reads' closures would
		// each copy it to the heap otherwise (about a kilobyte a read).
		mt := &mount{params: params, cfg: cfg, log: log}
		mt.cfg.Address = addr
		mt.id = auth.Identity{Vault: mt.cfg, Role: params.Role, Audience: params.Audience, Pod: params.Pod}
		mt.idKey = mt.id.Key()
		mt.connKey = mt.cfg.ConnectionKey()
		base, err := m.Clients.Get(mt.cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", spc.ErrInvalidParameters, err)
		}
		bodies, err := m.readWithSession(ctx, mt, base)
		if err == nil {
			defer m.release(mt)
			return m.respond(ctx, mt, bodies)
		}
		m.release(mt) // before the next address holds its own
		err2 = err
		if !errors.Is(err, vault.ErrUnavailable) || ctx.Err() != nil || i == len(addresses)-1 {
			break
		}
		log.Warn("vault unavailable; trying the next address", "addr", addr, "next", addresses[i+1], "error", err)
	}
	return nil, err2
}

// readWithSession reads every object with the pod's Vault session.
func (m *Mounter) readWithSession(ctx context.Context, mt *mount, base *vault.Conn) (map[string]render.Fetched, error) {
	var bodies map[string]render.Fetched
	login := auth.Login{Conn: base, Tokens: mt.params.Tokens, Outlives: func() bool {
		return mt.leased.Load() || slices.ContainsFunc(mt.params.Objects, func(o spc.Object) bool { return o.VaultToken })
	}}
	err := m.Sessions.Use(ctx, mt.id, login, func(sess vault.Session) error {
		var err error
		bodies, err = m.readAll(ctx, mt, sess)
		return err
	})
	return bodies, err
}

// fetchKey is equal for objects that need the same Vault calls.
func fetchKey(o spc.Object) string {
	switch {
	case o.VaultToken:
		return "token\x00" + o.Name
	case o.Template != "":
		return "template\x00" + o.Name
	}
	return o.Call.Key()
}

// DefaultMountMaxBytes is Mounter.MountMaxBytes when it is not set.
const DefaultMountMaxBytes = 16 << 20

func (m *Mounter) mountMaxBytes() int64 {
	if m.MountMaxBytes <= 0 {
		return DefaultMountMaxBytes
	}
	return m.MountMaxBytes
}

func (m *Mounter) templateLimits() render.Limits {
	if m.TemplateLimits == (render.Limits{}) {
		return render.DefaultLimits
	}
	return m.TemplateLimits
}

// readAll makes each object's calls, ReadConcurrency at once, each distinct
// request once; the first error cancels the rest.
func (m *Mounter) readAll(ctx context.Context, mt *mount, sess vault.Session) (map[string]render.Fetched, error) {
	tasks := m.tasks(mt, sess)
	var mu sync.Mutex
	results := make(map[string]render.Fetched, len(tasks))
	run := func(ctx context.Context, key string, task fetch) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w (%T) while reading the objects", cache.ErrPanicked, r)
			}
		}()
		f, err := task(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		results[key] = f
		mu.Unlock()
		return nil
	}
	if len(tasks) == 1 { // nothing to run in parallel
		for key, task := range tasks {
			return results, run(ctx, key, task)
		}
	}
	// ReadConcurrency goroutines take the tasks in turn: a mount of many
	// objects starts that many goroutines, not one per object.
	keys := slices.Collect(maps.Keys(tasks))
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range min(max(m.ReadConcurrency, 1), len(keys)) {
		g.Go(func() error {
			for i := next.Add(1) - 1; i < int64(len(keys)); i = next.Add(1) - 1 {
				if err := run(gctx, keys[i], tasks[keys[i]]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return results, g.Wait()
}

// fetch makes what one object needs.
type fetch func(context.Context) (render.Fetched, error)

// tasks are the mount's distinct fetches, by fetchKey.
func (m *Mounter) tasks(mt *mount, sess vault.Session) map[string]fetch {
	once := newReadOnce(func(ctx context.Context, key string, c spc.Call) ([]byte, error) {
		body, err := m.read(ctx, mt, sess, key, c)
		if err != nil {
			return nil, explainRead(err, mt, c)
		}
		if m.Leases == nil && lease.Parse(body, time.Now()).Leased() { // its token must outlive the mount
			mt.leased.Store(true)
		}
		return body, nil
	})
	tasks := map[string]fetch{}
	budget := render.NewBudget(m.templateLimits())
	for _, o := range mt.params.Objects {
		switch {
		case o.VaultToken:
			tasks[fetchKey(o)] = func(ctx context.Context) (render.Fetched, error) { return m.podToken(ctx, mt, sess, o) }
		case o.Template != "":
			tasks[fetchKey(o)] = func(ctx context.Context) (render.Fetched, error) {
				templates, _ := m.limits()
				release, err := templates.Acquire(ctx, mt.params.Pod.Namespace)
				if err != nil {
					return render.Fetched{}, fmt.Errorf("object %q: waiting to run its template: %w", o.Name, err)
				}
				defer release()
				out, err := render.Template(ctx, o, once.get, budget)
				return render.Fetched{Body: out.Output, Versioned: out.Versioned}, err
			}
		default:
			tasks[fetchKey(o)] = func(ctx context.Context) (render.Fetched, error) {
				body, err := once.get(ctx, o.Call)
				return render.Fetched{Body: body}, err
			}
		}
	}
	return tasks
}

// readOnce sends each distinct request of a mount once.
type readOnce struct {
	read  func(ctx context.Context, key string, c spc.Call) ([]byte, error)
	mu    sync.Mutex
	calls map[string]func() ([]byte, error)
}

func newReadOnce(read func(ctx context.Context, key string, c spc.Call) ([]byte, error)) *readOnce {
	return &readOnce{read: read, calls: map[string]func() ([]byte, error){}}
}

func (o *readOnce) get(ctx context.Context, call spc.Call) ([]byte, error) {
	key := call.Key()
	o.mu.Lock()
	answer, ok := o.calls[key]
	if !ok {
		answer = sync.OnceValues(func() ([]byte, error) { return o.read(ctx, key, call) })
		o.calls[key] = answer
	}
	o.mu.Unlock()
	return answer()
}

// podToken is the pod's own Vault token, response-wrapped with wrapTTL.
func (m *Mounter) podToken(ctx context.Context, mt *mount, sess vault.Session, o spc.Object) (render.Fetched, error) {
	token := sess.Token()
	if o.WrapFor == 0 {
		return render.Fetched{Body: []byte(token)}, nil
	}
	c := spc.Call{Method: http.MethodPost, Path: "sys/wrapping/wrap", Body: map[string]any{"token": token}}
	r := vaultRequest(c)
	r.WrapTTL = o.WrapFor
	body, err := vault.Do(ctx, sess, r)
	m.Metrics.VaultRequest("wrap", vault.StatusClass(err))
	if err != nil {
		return render.Fetched{}, explainRead(err, mt, c)
	}
	var resp struct {
		WrapInfo struct {
			Token string `json:"token"`
		} `json:"wrap_info"`
	}
	if json.Unmarshal(body, &resp) != nil || resp.WrapInfo.Token == "" {
		return render.Fetched{}, fmt.Errorf("object %q: vault answered sys/wrapping/wrap without wrap_info.token", o.Name)
	}
	return render.Fetched{Body: []byte(resp.WrapInfo.Token)}, nil
}

// read makes one request, or answers it from the lease cache.
// key is c.Key(), before KV v2 path resolution.
func (m *Mounter) read(ctx context.Context, mt *mount, sess vault.Session, key string, c spc.Call) ([]byte, error) {
	r := vaultRequest(c)
	r.Hold = m.hold(mt, c.Path)
	if r.Method == http.MethodGet {
		r.Path = m.kv.Resolve(ctx, sess, mt.connKey, r.Path, func(err error) {
			m.Metrics.VaultRequest("mount_lookup", vault.StatusClass(err))
		})
	}
	src := source{m: m, mt: mt, sess: sess, r: r}
	if m.Leases == nil {
		return src.Read(ctx)
	}
	// A lease is the token's: Vault revokes it with the token, so a new
	// login (serial) reads anew.
	leaseKey := mt.idKey + " " + strconv.FormatUint(sess.Serial, 10) + " " + key
	body, outcome, err := m.Leases.Get(ctx, lease.Pod{Namespace: mt.params.Pod.Namespace, UID: mt.params.Pod.UID}, leaseKey, key, src)
	if err == nil {
		mt.log.Debug("vault answer", "method", r.Method, "path", r.Path, "from", outcome)
		m.Metrics.CacheEvent("lease", leaseEvents[outcome])
	}
	return body, err
}

// source is one request of a mount with its session, for the lease cache.
type source struct {
	m    *Mounter
	mt   *mount
	sess vault.Session
	r    vault.Request
}

func (s source) Read(ctx context.Context) ([]byte, error) {
	start := time.Now()
	body, err := vault.Do(ctx, s.sess, s.r)
	s.m.Metrics.VaultRequest("read", vault.StatusClass(err))
	s.mt.log.Debug("vault call", "method", s.r.Method, "path", s.r.Path, "status", vault.StatusClass(err),
		"bytes", len(body), "took", time.Since(start).Round(time.Millisecond))
	return body, err
}

func (s source) RenewLease(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error) {
	ttl, err := vault.RenewLease(ctx, s.sess, leaseID, increment)
	s.m.Metrics.VaultRequest("lease_renew", vault.StatusClass(err))
	return ttl, err
}

// leaseEvents are the cache_events_total events of the lease cache's outcomes.
var leaseEvents = map[lease.Outcome]string{lease.Reused: "hit", lease.Renewed: "renewal", lease.Read: "miss"}

// respond builds the files and versions from what was fetched.
func (m *Mounter) respond(ctx context.Context, mt *mount, results map[string]render.Fetched) (*v1alpha1.MountResponse, error) {
	return render.Files(m.Keys.Key(ctx), mt.params.Objects, mt.params.DefaultMode, func(o spc.Object) render.Fetched { return results[fetchKey(o)] })
}

// vaultRequest is the request for an object's call.
func vaultRequest(c spc.Call) vault.Request {
	return vault.Request{Method: c.Method, Path: c.Path, Query: c.Query, Body: c.Body}
}
