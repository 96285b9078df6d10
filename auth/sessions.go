package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaultcsi/vault-csi-provider/cache"
	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/fair"
	"github.com/vaultcsi/vault-csi-provider/metrics"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// Identity is who a Vault token was issued to and how: a token is reused
// only for the same pod, role, audience and Vault configuration.
type Identity struct {
	Vault    config.Vault
	Role     string
	Audience string
	Pod      Pod
}

// Key identifies the identity in caches: a hash, no token, no secret.
func (id Identity) Key() string {
	h := sha256.New()
	for _, f := range []string{
		id.Vault.ConnectionKey(), id.Vault.AuthMount,
		id.Role, id.Audience, id.Pod.Namespace, id.Pod.ServiceAccount, id.Pod.UID,
	} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// loginFunc performs one login.
type loginFunc func(ctx context.Context) (vault.Session, error)

// Sessions caches Vault tokens per Identity. Safe for concurrent use.
//
// A cached token is used while more than half its TTL is left; past that a
// renewable one is renewed and kept if Vault grants half its TTL again, and
// one that cannot be renewed is used until a fifth is left. Otherwise a new
// login, shared by concurrent callers of the identity. At most size tokens
// are kept (0: none); the least recently used are revoked when pushed out,
// and so are those Forget and RevokePod drop, with their leases.
type Sessions struct {
	cache   *cache.Cache[cachedSession]
	now     func() time.Time
	serials atomic.Uint64 // the last Session.Serial given
	logins  *fair.Slots   // a slot per login in flight; nil: no bound
	// LoginTimeout bounds a shared login, which outlives any one caller's context.
	LoginTimeout time.Duration
	// Renew and Revoke talk to Vault; tests may replace them.
	Renew  func(context.Context, vault.Session) (time.Duration, error)
	Revoke func(context.Context, vault.Session) error
	// Tokens gives the pod's service-account token for a login.
	Tokens TokenSource
	// Metrics and Log may be nil.
	Metrics *metrics.Metrics
	Log     *slog.Logger

	revokersOnce sync.Once
	revocations  chan vault.Session
}

// cachedSession is immutable: a renewal stores a new one.
type cachedSession struct {
	session   vault.Session
	pod       string
	namespace string
	expires   time.Time // zero: no expiry
}

// left is the part of the token's TTL still ahead, as a fraction.
func (cs cachedSession) left(now time.Time) float64 {
	if cs.expires.IsZero() || cs.session.TTL <= 0 {
		return 1
	}
	return float64(cs.expires.Sub(now)) / float64(cs.session.TTL)
}

// NewSessions returns a cache of at most size sessions.
func NewSessions(size int, loginTimeout time.Duration) *Sessions {
	s := &Sessions{now: time.Now, LoginTimeout: loginTimeout, Renew: vault.RenewSelf, Revoke: vault.RevokeSelf}
	s.cache = cache.New(cache.Options[cachedSession]{
		MaxEntries: size,
		Now:        func() time.Time { return s.now() },
		// A namespace logging in as many identities pushes out its own.
		Owner: func(cs cachedSession) string { return cs.namespace },
		OnEvict: func(_ string, cs cachedSession) {
			s.Metrics.CacheEvent("token", "eviction")
			s.retire(cs.session)
		},
	})
	if size <= 0 {
		s.cache = nil // keeps none: a mount's token is not revoked under it
	}
	return s
}

// LimitLogins bounds the logins in flight at once to n (-login-concurrency),
// and one namespace's to its fair.Share: a namespace whose Vault never
// answers waits behind itself, and the others still log in.
func (s *Sessions) LimitLogins(n int) {
	if n > 0 {
		s.logins = fair.NewSlots(n, fair.Share(n))
	}
}

// login runs one login in its turn.
func (s *Sessions) login(ctx context.Context, namespace string, login loginFunc) (vault.Session, error) {
	if s.logins != nil {
		release, err := s.logins.Acquire(ctx, namespace)
		if err != nil {
			return vault.Session{}, fmt.Errorf("waiting for a turn to log in (-login-concurrency=%d logins at once, %d of namespace %s, are in flight): %w",
				s.logins.Size(), s.logins.Share(), namespace, context.Cause(ctx))
		}
		defer release()
	}
	return login(ctx)
}

// get returns a usable session for id; fresh: it came from a new login.
func (s *Sessions) get(ctx context.Context, id Identity, login loginFunc) (session vault.Session, fresh bool, err error) {
	key := id.Key()
	if cs, ok := s.lookup(key); ok && cs.left(s.now()) > 0.5 {
		s.Metrics.CacheEvent("token", "hit")
		return cs.session, false, nil
	}
	type result struct {
		session vault.Session
		fresh   bool
	}
	v, err := s.do(ctx, key, func(opCtx context.Context) (any, error) {
		if sess, ok := s.keepAlive(opCtx, key); ok {
			return result{sess, false}, nil
		}
		s.Metrics.CacheEvent("token", "miss")
		sess, err := s.login(opCtx, id.Pod.Namespace, login)
		if err != nil {
			return nil, err
		}
		sess.Serial = s.serials.Add(1)
		s.store(key, id.Pod, sess)
		return result{sess, true}, nil
	})
	if err != nil {
		return vault.Session{}, false, err
	}
	res := v.(result)
	return res.session, res.fresh, nil
}

// do shares one login or renewal between concurrent callers of a key.
func (s *Sessions) do(ctx context.Context, key string, load func(context.Context) (any, error)) (any, error) {
	if s.cache == nil {
		opCtx, cancel := context.WithTimeout(ctx, s.LoginTimeout)
		defer cancel()
		return load(opCtx)
	}
	return s.cache.Do(ctx, key, s.LoginTimeout, load)
}

// keepAlive returns the cached session while it is good, renewed past half its TTL.
func (s *Sessions) keepAlive(ctx context.Context, key string) (vault.Session, bool) {
	cs, ok := s.lookup(key)
	if !ok {
		return vault.Session{}, false
	}
	left := cs.left(s.now())
	switch {
	case left > 0.5:
		s.Metrics.CacheEvent("token", "hit")
		return cs.session, true
	case cs.session.Renewable && left > 0:
		if s.renew(ctx, key, cs) {
			return cs.session, true
		}
	case left > 0.2:
		s.Metrics.CacheEvent("token", "hit")
		return cs.session, true
	}
	return vault.Session{}, false
}

// renew reports whether Vault granted cs's token at least half its TTL again.
func (s *Sessions) renew(ctx context.Context, key string, cs cachedSession) bool {
	ttl, err := s.Renew(ctx, cs.session)
	s.Metrics.VaultRequest("token_renew", vault.StatusClass(err))
	if err != nil || ttl < cs.session.TTL/2 {
		return false
	}
	s.Metrics.CacheEvent("token", "renewal")
	cs.expires = s.now().Add(ttl)
	s.cache.Replace(key, cs, cs.expires)
	return true
}

// RenewDue renews every cached renewable token past half its TTL, so that
// a pod that mounts once keeps its token and its leases. It never logs in.
func (s *Sessions) RenewDue(ctx context.Context) {
	if s.cache == nil {
		return
	}
	s.cache.Each(func(key string, cs cachedSession, _ time.Time) {
		if !cs.session.Renewable {
			return
		}
		if left := cs.left(s.now()); left > 0.5 || left <= 0 {
			return
		}
		// Its own flight: a Use must never join it and receive its result.
		_, _ = s.cache.Do(ctx, "background\x00"+key, s.LoginTimeout, func(ctx context.Context) (any, error) {
			return s.renew(ctx, key, cs), nil
		})
	})
}

// Revocations waiting and the goroutines revoking them: a Vault that never
// answers costs revokeWorkers goroutines, each call bounded by LoginTimeout.
const (
	revokeQueue   = 1024
	revokeWorkers = 4
)

// retire revokes sess in the background, through a bounded queue and a few
// workers; a revocation the full queue cannot take is counted as failed
// (token_revoke "error") and the token expires with its TTL.
func (s *Sessions) retire(sess vault.Session) {
	s.revokersOnce.Do(func() {
		s.revocations = make(chan vault.Session, revokeQueue)
		for range revokeWorkers {
			go func() {
				for sess := range s.revocations {
					_ = s.revoke(context.Background(), sess) // counted in token_revoke
				}
			}()
		}
	})
	select {
	case s.revocations <- sess:
	default:
		s.Metrics.VaultRequest("token_revoke", "error")
	}
}

// RetirePod drops every session of the pod with uid and revokes them in the
// background (the pod watch's handler must not wait on Vault).
func (s *Sessions) RetirePod(uid string) int {
	gone := s.dropPod(uid)
	for _, cs := range gone {
		s.retire(cs.session)
	}
	return len(gone)
}

// RevokePod revokes and drops every session of the pod with uid.
func (s *Sessions) RevokePod(ctx context.Context, uid string) (int, error) {
	gone := s.dropPod(uid)
	var errs []error
	for _, cs := range gone {
		errs = append(errs, s.revoke(ctx, cs.session))
	}
	return len(gone), errors.Join(errs...)
}

// dropPod removes and returns every session of the pod with uid.
func (s *Sessions) dropPod(uid string) []cachedSession {
	if s.cache == nil {
		return nil
	}
	return s.cache.RemoveFunc(func(_ string, cs cachedSession) bool { return cs.pod == uid })
}

// Forget revokes and drops the session of id.
func (s *Sessions) Forget(ctx context.Context, id Identity) {
	if s.cache == nil {
		return
	}
	if cs, ok := s.cache.Remove(id.Key()); ok {
		_ = s.revoke(ctx, cs.session) // a token Vault no longer knows cannot be revoked, and need not be
	}
}

// Len is the number of cached sessions.
func (s *Sessions) Len() int {
	if s.cache == nil {
		return 0
	}
	return s.cache.Len()
}

func (s *Sessions) revoke(ctx context.Context, sess vault.Session) error {
	ctx, cancel := context.WithTimeout(ctx, s.LoginTimeout)
	defer cancel()
	err := s.Revoke(ctx, sess)
	s.Metrics.VaultRequest("token_revoke", vault.StatusClass(err))
	return err
}

func (s *Sessions) lookup(key string) (cachedSession, bool) {
	if s.cache == nil {
		return cachedSession{}, false
	}
	cs, ok := s.cache.Get(key)
	if ok && cs.left(s.now()) <= 0 {
		s.cache.Remove(key)
		return cachedSession{}, false
	}
	return cs, ok
}

func (s *Sessions) store(key string, pod Pod, sess vault.Session) {
	if s.cache == nil {
		return
	}
	cs := cachedSession{session: sess, pod: pod.UID, namespace: pod.Namespace}
	if sess.TTL > 0 {
		cs.expires = s.now().Add(sess.TTL)
	}
	s.cache.Add(key, cs, cs.expires)
}
