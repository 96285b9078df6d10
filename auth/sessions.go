package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

// Identity is who a Vault token was issued to and how: a token is reused
// only for the same pod, role, audience and Vault configuration. It is never
// derived from token text.
type Identity struct {
	Vault    config.Vault
	Role     string
	Audience string
	Pod      Pod
}

func (id Identity) key() string {
	h := sha256.New()
	for _, f := range []string{
		id.Vault.Address, id.Vault.Namespace, id.Vault.AuthMount, id.Vault.CACert, id.Vault.CADirectory,
		id.Vault.TLSServerName, id.Vault.ClientCert, id.Vault.ClientKey, boolString(id.Vault.InsecureSkipVerify()),
		id.Role, id.Audience, id.Pod.Namespace, id.Pod.ServiceAccount, id.Pod.UID,
	} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func boolString(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// LoginFunc performs one login.
type LoginFunc func(ctx context.Context) (vault.Session, error)

// Sessions caches Vault tokens per Identity.
//
// Contract: safe for concurrent use. Get returns a cached session while it has
// more than a fifth of its TTL left; otherwise it logs in, and concurrent Gets
// for the same identity share that one login. At most size sessions are kept
// (least recently used go first); size 0 keeps none, so every Get logs in.
// Forget drops a session Vault no longer accepts.
type Sessions struct {
	mu    sync.Mutex // guards cache (the LRU locks too; this keeps check-then-add atomic)
	cache *lru.Cache[string, cachedSession]
	group singleflight.Group
	now   func() time.Time
	// LoginTimeout bounds a shared login, which outlives any one caller's context.
	LoginTimeout time.Duration
}

type cachedSession struct {
	session     vault.Session
	usableUntil time.Time // zero: no expiry
}

// NewSessions returns a cache of at most size sessions.
func NewSessions(size int, loginTimeout time.Duration) *Sessions {
	s := &Sessions{now: time.Now, LoginTimeout: loginTimeout}
	if size > 0 {
		s.cache, _ = lru.New[string, cachedSession](size) // fails only for size <= 0
	}
	return s
}

// Get returns a usable session for id, logging in with login when needed.
// fresh reports whether this call's result came from a new login.
func (s *Sessions) Get(ctx context.Context, id Identity, login LoginFunc) (session vault.Session, fresh bool, err error) {
	key := id.key()
	if cs, ok := s.lookup(key); ok {
		return cs.session, false, nil
	}
	ch := s.group.DoChan(key, func() (any, error) {
		if cs, ok := s.lookup(key); ok { // another caller logged in meanwhile
			return cs.session, nil
		}
		loginCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.LoginTimeout)
		defer cancel()
		sess, err := login(loginCtx)
		if err != nil {
			return vault.Session{}, err
		}
		s.store(key, sess)
		return sess, nil
	})
	select {
	case <-ctx.Done():
		return vault.Session{}, false, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return vault.Session{}, false, r.Err
		}
		return r.Val.(vault.Session), true, nil
	}
}

// Forget drops the session of id, so that the next Get logs in again.
func (s *Sessions) Forget(id Identity) {
	if s.cache == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.Remove(id.key())
}

// Len is the number of cached sessions.
func (s *Sessions) Len() int {
	if s.cache == nil {
		return 0
	}
	return s.cache.Len()
}

func (s *Sessions) lookup(key string) (cachedSession, bool) {
	if s.cache == nil {
		return cachedSession{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs, ok := s.cache.Get(key)
	if !ok {
		return cachedSession{}, false
	}
	if !cs.usableUntil.IsZero() && !s.now().Before(cs.usableUntil) {
		s.cache.Remove(key)
		return cachedSession{}, false
	}
	return cs, true
}

func (s *Sessions) store(key string, sess vault.Session) {
	if s.cache == nil {
		return
	}
	cs := cachedSession{session: sess}
	if sess.TTL > 0 {
		cs.usableUntil = s.now().Add(sess.TTL * 4 / 5)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.Add(key, cs)
}
