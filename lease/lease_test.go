package lease

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
)

func TestParse(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name string
		body string
		want Info
	}{
		{name: "database credentials", body: `{"lease_id":"database/creds/app/abc","lease_duration":3600,"renewable":true,"data":{"username":"u"}}`,
			want: Info{LeaseID: "database/creds/app/abc", TTL: time.Hour, Renewable: true}},
		{name: "KV v2 has no lease", body: `{"lease_id":"","lease_duration":0,"data":{"data":{"a":"b"}}}`},
		{name: "KV v1's advisory TTL is not a lease", body: `{"lease_id":"","lease_duration":2764800,"data":{"a":"b"}}`},
		{name: "PKI certificate without a lease lives until it expires", body: `{"lease_id":"","data":{"certificate":"c","serial_number":"01:02","expiration":1800000600}}`,
			want: Info{TTL: 10 * time.Minute}},
		{name: "expired certificate", body: `{"data":{"certificate":"c","serial_number":"01:02","expiration":1700000000}}`},
		{name: "a KV v1 secret with an expiration key is not a lease", body: `{"lease_id":"","lease_duration":2764800,"data":{"expiration":1800000600,"password":"p"}}`},
		{name: "nor with a certificate key but no serial number", body: `{"lease_id":"","data":{"certificate":"c","expiration":"1800000600"}}`},
		{name: "nor a KV v2 secret shaped like a certificate", body: `{"lease_id":"","data":{"data":{"certificate":"c","serial_number":"1","expiration":1800000600},"metadata":{}}}`},
		{name: "not JSON", body: `nope`},
		{name: "Vault's own order: a secret's lease_id key is not the answer's", body: `{"request_id":"r","lease_id":"database/creds/app/abc","renewable":false,"lease_duration":60,"data":{"lease_id":""}}`,
			want: Info{LeaseID: "database/creds/app/abc", TTL: time.Minute}},
		{name: "KV v2 as Vault writes it", body: `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"a":"b"},"metadata":{}},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Parse([]byte(tc.body), now))
		})
	}
}

// vaultLike counts reads and renewals and issues numbered leases.
type vaultLike struct {
	reads, renewals atomic.Int32
	renewable       bool
	grant           time.Duration // what a renewal grants
	renewErr        error
}

func (v *vaultLike) read(context.Context) ([]byte, error) {
	n := v.reads.Add(1)
	return fmt.Appendf(nil, `{"lease_id":"db/creds/%d","lease_duration":60,"renewable":%t,"data":{"username":"user-%d"}}`, n, v.renewable, n), nil
}

func (v *vaultLike) renew(context.Context, string, time.Duration) (time.Duration, error) {
	v.renewals.Add(1)
	return v.grant, v.renewErr
}

func TestCacheLifecycle(t *testing.T) {
	tests := []struct {
		name         string
		vault        *vaultLike
		after        time.Duration
		wantOutcome  Outcome
		wantReads    int32
		wantRenewals int32
		wantUser     string
	}{
		{name: "reused with plenty of TTL left", vault: &vaultLike{renewable: true, grant: time.Minute}, after: 30 * time.Second, wantOutcome: Reused, wantReads: 1, wantUser: "user-1"},
		{name: "renewed below the threshold", vault: &vaultLike{renewable: true, grant: time.Minute}, after: 45 * time.Second, wantOutcome: Renewed, wantReads: 1, wantRenewals: 1, wantUser: "user-1"},
		{name: "renewal capped by max TTL: read anew", vault: &vaultLike{renewable: true, grant: 10 * time.Second}, after: 45 * time.Second, wantOutcome: Read, wantReads: 2, wantRenewals: 1, wantUser: "user-2"},
		{name: "renewal refused: read anew", vault: &vaultLike{renewable: true, grant: time.Minute, renewErr: errors.New("403")}, after: 45 * time.Second, wantOutcome: Read, wantReads: 2, wantRenewals: 1, wantUser: "user-2"},
		{name: "not renewable: read anew", vault: &vaultLike{}, after: 45 * time.Second, wantOutcome: Read, wantReads: 2, wantUser: "user-2"},
		{name: "expired: read anew without renewing", vault: &vaultLike{renewable: true, grant: time.Minute}, after: 61 * time.Second, wantOutcome: Read, wantReads: 2, wantUser: "user-2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := manualclock.New(time.Unix(1_800_000_000, 0))
			c := NewCache(10, 0, 0.33)
			c.now = clk.Now
			v := tc.vault
			_, out, err := c.Get(context.Background(), Pod{UID: "pod"}, "k", "k", sourceFuncs{v.renew, v.read})
			require.NoError(t, err)
			assert.Equal(t, Read, out)
			clk.Add(tc.after)
			body, out, err := c.Get(context.Background(), Pod{UID: "pod"}, "k", "k", sourceFuncs{v.renew, v.read})
			require.NoError(t, err)
			assert.Equal(t, tc.wantOutcome, out)
			assert.Contains(t, string(body), tc.wantUser)
			assert.Equal(t, tc.wantReads, v.reads.Load())
			assert.Equal(t, tc.wantRenewals, v.renewals.Load())
		})
	}
}

func TestCacheStaticSecretsAreNotKept(t *testing.T) {
	c := NewCache(10, 0, 0.33)
	var reads atomic.Int32
	read := func(context.Context) ([]byte, error) { reads.Add(1); return []byte(`{"data":{"data":{"a":"b"}}}`), nil }
	for range 3 {
		_, out, err := c.Get(context.Background(), Pod{UID: "pod"}, "k", "k", sourceFuncs{nil, read})
		require.NoError(t, err)
		assert.Equal(t, Read, out)
	}
	assert.Equal(t, int32(3), reads.Load(), "KV is re-read on every rotation poll")
	assert.Equal(t, 0, c.Len())
}

// TestCacheConcurrent: hundreds of concurrent mounts of one pod's database
// secret create one lease; other pods get their own; ForgetPod drops one pod's.
func TestCacheConcurrent(t *testing.T) {
	c := NewCache(1000, 0, 0.33)
	vaults := map[string]*vaultLike{}
	for _, pod := range []string{"a", "b", "c"} {
		vaults[pod] = &vaultLike{renewable: true, grant: time.Minute}
	}
	var wg sync.WaitGroup
	for i := range 300 {
		pod := []string{"a", "b", "c"}[i%3]
		wg.Go(func() {
			_, _, err := c.Get(context.Background(), Pod{UID: pod}, pod+"/db", pod+"/db", sourceFuncs{vaults[pod].renew, vaults[pod].read})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	for pod, v := range vaults {
		assert.Equal(t, int32(1), v.reads.Load(), "one lease for pod %s", pod)
	}
	assert.Equal(t, 1, c.ForgetPod("b"))
	assert.Equal(t, 2, c.Len())
}

// TestRenewDue: the background pass renews leases past half their TTL with
// the renewal of the last mount, and leaves the others alone.
func TestRenewDue(t *testing.T) {
	clk := manualclock.New(time.Unix(1_800_000_000, 0))
	c := NewCache(10, 0, 0.33)
	c.now = clk.Now
	due, fresh := &vaultLike{renewable: true, grant: time.Minute}, &vaultLike{renewable: true, grant: time.Minute}
	_, _, err := c.Get(context.Background(), Pod{UID: "pod"}, "due", "due", sourceFuncs{due.renew, due.read})
	require.NoError(t, err)
	clk.Add(35 * time.Second)
	_, _, err = c.Get(context.Background(), Pod{UID: "pod"}, "fresh", "fresh", sourceFuncs{fresh.renew, fresh.read})
	require.NoError(t, err)

	c.RenewDue(context.Background())
	assert.Equal(t, int32(1), due.renewals.Load(), "past half its TTL")
	assert.Equal(t, int32(0), fresh.renewals.Load(), "just read")

	clk.Add(30 * time.Second) // 65s after the first read, past its first 60s: alive only thanks to the renewal
	_, out, err := c.Get(context.Background(), Pod{UID: "pod"}, "due", "due", sourceFuncs{due.renew, due.read})
	require.NoError(t, err)
	assert.Equal(t, Reused, out)
	assert.Equal(t, int32(1), due.reads.Load())
}

// TestCacheBoundedByBytes: large leased answers (certificate chains) push
// the least recently used out by size, whatever the entry bound; the most
// recent are still reused.
func TestCacheBoundedByBytes(t *testing.T) {
	c := NewCache(1000, 64<<10, 0.33)
	big := `{"lease_id":"pki/x","lease_duration":3600,"data":{"chain":"` + strings.Repeat("c", 10<<10) + `"}}`
	var reads atomic.Int32
	read := func(context.Context) ([]byte, error) { reads.Add(1); return []byte(big), nil }
	for i := range 20 {
		_, _, err := c.Get(context.Background(), Pod{UID: "pod"}, fmt.Sprintf("cert-%d", i), fmt.Sprintf("cert-%d", i), sourceFuncs{nil, read})
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, c.Len(), 6, "64 KiB hold six answers of 10 KiB, not twenty")
	_, out, err := c.Get(context.Background(), Pod{UID: "pod"}, "cert-19", "cert-19", sourceFuncs{nil, read})
	require.NoError(t, err)
	assert.Equal(t, Reused, out, "the latest is kept")
	_, out, err = c.Get(context.Background(), Pod{UID: "pod"}, "cert-0", "cert-0", sourceFuncs{nil, read})
	require.NoError(t, err)
	assert.Equal(t, Read, out, "the oldest was pushed out")
}

// TestStaticCallsAreReadDirectly: a call that answered without a lease is
// read again on every Get (outside the shared flight), and if it answers
// with a lease one day, that lease is kept and reused like any other.
func TestStaticCallsAreReadDirectly(t *testing.T) {
	c := NewCache(10, 0, 0.33)
	var reads atomic.Int32
	leased := atomic.Bool{}
	read := func(context.Context) ([]byte, error) {
		reads.Add(1)
		if leased.Load() {
			return []byte(`{"lease_id":"database/creds/app/1","lease_duration":600,"renewable":true,"data":{"username":"u"}}`), nil
		}
		return []byte(`{"lease_id":"","lease_duration":0,"data":{"data":{"a":"b"}}}`), nil
	}
	for range 3 {
		_, out, err := c.Get(context.Background(), Pod{UID: "pod"}, "pod k", "k", sourceFuncs{nil, read})
		require.NoError(t, err)
		assert.Equal(t, Read, out)
	}
	leased.Store(true)
	_, out, err := c.Get(context.Background(), Pod{UID: "pod"}, "pod k", "k", sourceFuncs{nil, read})
	require.NoError(t, err)
	assert.Equal(t, Read, out)
	_, out, err = c.Get(context.Background(), Pod{UID: "pod"}, "pod k", "k", sourceFuncs{nil, read})
	require.NoError(t, err)
	assert.Equal(t, Reused, out, "the lease it answered with is kept")
	assert.Equal(t, int32(4), reads.Load())
}

// sourceFuncs is a lease.Source of two functions; a nil renew fails.
type sourceFuncs struct {
	renew func(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error)
	read  func(ctx context.Context) ([]byte, error)
}

func (f sourceFuncs) Read(ctx context.Context) ([]byte, error) { return f.read(ctx) }

func (f sourceFuncs) RenewLease(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error) {
	if f.renew == nil {
		return 0, errors.New("not renewable here")
	}
	return f.renew(ctx, leaseID, increment)
}
