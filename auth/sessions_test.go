package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vaultcsi/vault-csi-provider/test/manualclock"

	"github.com/vaultcsi/vault-csi-provider/vault"
)

func identity(uid string) Identity {
	return Identity{Role: "app", Audience: "vault", Pod: Pod{Namespace: "demo", Name: "p-" + uid, UID: uid, ServiceAccount: "app"}}
}

// counter logs in with a given TTL and counts the logins.
type counter struct {
	logins    atomic.Int32
	ttl       time.Duration
	renewable bool
}

func (c *counter) login(context.Context) (vault.Session, error) {
	n := c.logins.Add(1)
	time.Sleep(time.Millisecond) // let concurrent callers pile up
	return vault.Session{TTL: c.ttl, Renewable: c.renewable, Accessor: fmt.Sprint(n)}, nil
}

// TestSessionsConcurrent: hundreds of concurrent mounts, several identities,
// one login each.
func TestSessionsConcurrent(t *testing.T) {
	s := NewSessions(100, time.Second)
	logins := map[string]*counter{}
	for _, uid := range []string{"a", "b", "c", "d"} {
		logins[uid] = &counter{ttl: time.Hour}
	}
	var wg sync.WaitGroup
	for i := range 400 {
		uid := []string{"a", "b", "c", "d"}[i%4]
		wg.Go(func() {
			_, _, err := s.get(context.Background(), identity(uid), logins[uid].login)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for uid, c := range logins {
		assert.Equal(t, int32(1), c.logins.Load(), "identity %s", uid)
	}
	assert.Equal(t, 4, s.Len())
}

func TestSessionsLifecycle(t *testing.T) {
	tests := []struct {
		name       string
		renewable  bool
		grant      time.Duration
		renewErr   error
		after      time.Duration
		wantLogins int32
		wantRenews int32
	}{
		{name: "reused before half its TTL", renewable: true, grant: time.Minute, after: 20 * time.Second, wantLogins: 1},
		{name: "renewed past half its TTL", renewable: true, grant: time.Minute, after: 40 * time.Second, wantLogins: 1, wantRenews: 1},
		{name: "renewal grants too little (max TTL): log in", renewable: true, grant: 10 * time.Second, after: 40 * time.Second, wantLogins: 2, wantRenews: 1},
		{name: "renewal fails: log in", renewable: true, grant: time.Minute, renewErr: errors.New("403"), after: 40 * time.Second, wantLogins: 2, wantRenews: 1},
		{name: "not renewable: used until a fifth is left", after: 40 * time.Second, wantLogins: 1},
		{name: "not renewable: then log in", after: 50 * time.Second, wantLogins: 2},
		{name: "expired: log in", renewable: true, grant: time.Minute, after: 61 * time.Second, wantLogins: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := manualclock.New(time.Unix(1_800_000_000, 0))
			s := NewSessions(10, time.Second)
			s.now = clk.Now
			var revokes atomic.Int32
			s.Revoke = func(context.Context, vault.Session) error { revokes.Add(1); return nil }
			var renews atomic.Int32
			s.Renew = func(context.Context, vault.Session) (time.Duration, error) {
				renews.Add(1)
				return tc.grant, tc.renewErr
			}
			c := &counter{ttl: time.Minute, renewable: tc.renewable}
			_, fresh, err := s.get(context.Background(), identity("a"), c.login)
			require.NoError(t, err)
			assert.True(t, fresh)
			clk.Add(tc.after)
			_, fresh, err = s.get(context.Background(), identity("a"), c.login)
			require.NoError(t, err)
			assert.Equal(t, tc.wantLogins == 2, fresh)
			assert.Equal(t, tc.wantLogins, c.logins.Load())
			assert.Equal(t, tc.wantRenews, renews.Load())
			if tc.wantLogins == 2 && tc.after < c.ttl {
				assert.Eventually(t, func() bool { return revokes.Load() == 1 }, 5*time.Second, time.Millisecond, "the live token replaced by the new login is revoked")
			} else {
				assert.Never(t, func() bool { return revokes.Load() > 0 }, 50*time.Millisecond, time.Millisecond, "a token in use, or expired, is not revoked")
			}
		})
	}
}

func TestRevokePod(t *testing.T) {
	s := NewSessions(10, time.Second)
	var revoked []string
	var mu sync.Mutex
	s.Revoke = func(_ context.Context, sess vault.Session) error {
		mu.Lock()
		defer mu.Unlock()
		revoked = append(revoked, sess.Accessor)
		return nil
	}
	c := &counter{ttl: time.Hour}
	other := identity("a")
	other.Role = "other-role"
	for _, id := range []Identity{identity("a"), other, identity("b")} {
		_, _, err := s.get(context.Background(), id, c.login)
		require.NoError(t, err)
	}
	n, err := s.RevokePod(context.Background(), "a")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "both of pod a's tokens")
	assert.ElementsMatch(t, []string{"1", "2"}, revoked)
	assert.Equal(t, 1, s.Len(), "pod b's token stays")
}

// TestSessionsRenewDue: the background pass renews renewable tokens past
// half their TTL and never logs in.
func TestSessionsRenewDue(t *testing.T) {
	clk := manualclock.New(time.Unix(1_800_000_000, 0))
	s := NewSessions(10, time.Second)
	s.now = clk.Now
	s.Revoke = func(context.Context, vault.Session) error { return nil }
	var renews atomic.Int32
	s.Renew = func(context.Context, vault.Session) (time.Duration, error) { renews.Add(1); return time.Minute, nil }
	renewable, fixed := &counter{ttl: time.Minute, renewable: true}, &counter{ttl: time.Minute}
	_, _, err := s.get(context.Background(), identity("a"), renewable.login)
	require.NoError(t, err)
	_, _, err = s.get(context.Background(), identity("b"), fixed.login)
	require.NoError(t, err)

	s.RenewDue(context.Background())
	assert.Equal(t, int32(0), renews.Load(), "nothing is due yet")
	clk.Add(40 * time.Second)
	s.RenewDue(context.Background())
	assert.Equal(t, int32(1), renews.Load(), "only the renewable token")
	clk.Add(40 * time.Second) // 80s: alive only thanks to the renewal
	_, fresh, err := s.get(context.Background(), identity("a"), renewable.login)
	require.NoError(t, err)
	assert.False(t, fresh)
	assert.Equal(t, int32(1), renewable.logins.Load()+fixed.logins.Load()-1, "no login in the background")
}

// TestEvictedTokensAreRevoked: a full cache pushes out its least recently
// used token and revokes it; the others stay usable.
func TestEvictedTokensAreRevoked(t *testing.T) {
	s := NewSessions(2, time.Second)
	revoked := make(chan string, 10)
	s.Revoke = func(_ context.Context, sess vault.Session) error { revoked <- sess.Accessor; return nil }
	c := &counter{ttl: time.Hour}
	for _, uid := range []string{"a", "b", "c"} {
		_, _, err := s.get(context.Background(), identity(uid), c.login)
		require.NoError(t, err)
	}
	select {
	case acc := <-revoked:
		assert.Equal(t, "1", acc, "pod a's token, the least recently used")
	case <-time.After(5 * time.Second):
		t.Fatal("the evicted token was not revoked")
	}
	assert.Equal(t, 2, s.Len())
	_, fresh, err := s.get(context.Background(), identity("c"), c.login)
	require.NoError(t, err)
	assert.False(t, fresh)
}

// TestLoginsAreBounded: with LimitLogins(8), 30 new identities of one
// namespace log in at most 6 at once (its share, the rest kept for others),
// then 60 of two namespaces at most 8 at once, 6 of one; all get a token; a
// login that cannot get its turn before its deadline says which flag bounds it.
func TestLoginsAreBounded(t *testing.T) {
	s := NewSessions(1000, 5*time.Second)
	s.LimitLogins(8)
	var mu sync.Mutex
	inFlight := map[string]int{}
	most, mostOfOne := 0, 0
	login := func(ns string) loginFunc {
		return func(context.Context) (vault.Session, error) {
			mu.Lock()
			inFlight[ns]++
			inFlight[""]++
			most, mostOfOne = max(most, inFlight[""]), max(mostOfOne, inFlight[ns])
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			inFlight[ns]--
			inFlight[""]--
			mu.Unlock()
			return vault.Session{TTL: time.Hour}, nil
		}
	}
	burst := func(n int, namespaces ...string) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := identity(fmt.Sprint(namespaces[0], i))
				id.Pod.Namespace = namespaces[i%len(namespaces)]
				_, fresh, err := s.get(context.Background(), id, login(id.Pod.Namespace))
				assert.NoError(t, err)
				assert.True(t, fresh)
			})
		}
		wg.Wait()
	}
	burst(30, "alone")
	assert.Equal(t, 6, most, "one namespace alone: its share")
	most, mostOfOne = 0, 0
	burst(60, "a", "b")
	assert.Equal(t, 8, most, "logins in flight at once")
	assert.LessOrEqual(t, mostOfOne, 6, "logins of one namespace in flight at once")
	assert.Equal(t, 90, s.Len())

	blocked := NewSessions(100, 50*time.Millisecond)
	blocked.LimitLogins(1)
	release := make(chan struct{})
	go func() {
		_, _, _ = blocked.get(context.Background(), identity("slow"), func(context.Context) (vault.Session, error) {
			<-release
			return vault.Session{TTL: time.Hour}, nil
		})
	}()
	time.Sleep(10 * time.Millisecond)
	_, _, err := blocked.get(context.Background(), identity("waiting"), login("demo"))
	close(release)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "-login-concurrency=1")
}

// TestANamespaceEvictsOnlyItsOwnTokens: with the cache full of another
// namespace's tokens, a namespace logging in as 2,000 identities (any pod
// may set roleName) pushes out and revokes only its own.
func TestANamespaceEvictsOnlyItsOwnTokens(t *testing.T) {
	s := NewSessions(1000, time.Second)
	var mu sync.Mutex
	revoked := map[string]int{}
	s.Revoke = func(_ context.Context, sess vault.Session) error {
		mu.Lock()
		revoked[strings.SplitN(sess.Accessor, "/", 2)[0]]++
		mu.Unlock()
		return nil
	}
	login := func(ns, uid string) error {
		id := identity(uid)
		id.Pod.Namespace = ns
		_, _, err := s.get(context.Background(), id, func(context.Context) (vault.Session, error) {
			return vault.Session{TTL: time.Hour, Accessor: ns + "/" + uid}, nil
		})
		return err
	}
	for i := range 10 {
		require.NoError(t, login("victim", fmt.Sprint(i)))
	}
	for i := range 2000 {
		require.NoError(t, login("hostile", fmt.Sprint(i)))
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return revoked["hostile"] == 1010 }, 5*time.Second, 10*time.Millisecond)
	mu.Lock()
	assert.Zero(t, revoked["victim"], "no token of the other namespace revoked")
	mu.Unlock()
	assert.Equal(t, 1000, s.Len())
	for i := range 10 {
		id := identity(fmt.Sprint(i))
		id.Pod.Namespace = "victim"
		_, fresh, err := s.get(context.Background(), id, nil)
		require.NoError(t, err)
		assert.False(t, fresh, "the victim's token is still cached")
	}
}

// TestRetirePodDoesNotWaitOnVault: the pod watch hands deleted pods' tokens
// over at once, even while one pod's Vault never answers; the others are
// revoked meanwhile by the remaining workers.
func TestRetirePodDoesNotWaitOnVault(t *testing.T) {
	s := NewSessions(10, time.Minute)
	hang := make(chan struct{})
	defer close(hang)
	var revoked atomic.Int32
	s.Revoke = func(_ context.Context, sess vault.Session) error {
		if sess.Accessor == "hanging" {
			<-hang
		}
		revoked.Add(1)
		return nil
	}
	for _, uid := range []string{"hanging", "b", "c"} {
		_, _, err := s.get(context.Background(), identity(uid), func(context.Context) (vault.Session, error) {
			return vault.Session{TTL: time.Hour, Accessor: uid}, nil
		})
		require.NoError(t, err)
	}
	start := time.Now()
	for _, uid := range []string{"hanging", "b", "c"} {
		assert.Equal(t, 1, s.RetirePod(uid))
	}
	assert.Less(t, time.Since(start), 100*time.Millisecond, "the handler returns at once")
	assert.Eventually(t, func() bool { return revoked.Load() == 2 }, 5*time.Second, time.Millisecond, "the other pods' tokens are revoked")
	assert.Zero(t, s.Len())
}
