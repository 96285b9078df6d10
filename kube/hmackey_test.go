package kube

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestHMACKeyWithoutKubernetes(t *testing.T) {
	var logs logBuffer
	k, err := NewHMACKey(nil, "ns", "key", slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	first := k.Key(context.Background())
	assert.Len(t, first, 32)
	assert.Equal(t, first, k.Key(context.Background()), "one key for the life of the process")
	assert.Contains(t, logs.String(), "no Kubernetes access: object versions use a per-process key")
}

// TestHMACKeyApiserverDown points a real client at a port nothing listens
// on: the mount goes on with the per-process key and the log says why and
// what RBAC the provider needs.
func TestHMACKeyApiserverDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	client, err := NewCore(&rest.Config{Host: "http://" + addr})
	require.NoError(t, err)

	var logs logBuffer
	k, err := NewHMACKey(client, "vault-csi", "vault-csi-provider-hmac-key", slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	key := k.Key(context.Background())
	assert.Len(t, key, 32)
	assert.Equal(t, key, k.Key(context.Background()), "not asked again within the retry interval")
	assert.Contains(t, logs.String(), "cannot read or create the HMAC key Secret")
	assert.Contains(t, logs.String(), "grant the provider get and create on secrets named vault-csi-provider-hmac-key in namespace vault-csi")
	assert.Equal(t, 1, strings.Count(logs.String(), "cannot read or create"))
}
