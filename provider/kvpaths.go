package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/vaultcsi/vault-csi-provider/vault"
)

// KVPaths lets users write KV version 2 paths as `vault kv get` takes them:
// secret/app on a KV v2 mount reads secret/data/app. The mount behind a path
// is asked of Vault once (sys/internal/ui/mounts/<path>) and remembered per
// connection, at most maxKVMountsPerConnection; paths naming data/ or
// metadata/ already are left alone. A refused or unanswered lookup leaves
// the path as written for this mount only, so one tenant's refusal never
// changes how another's paths read. Safe for concurrent use; zero is ready.
type KVPaths struct {
	mu     sync.RWMutex
	mounts map[string][]kvMount // connection key -> mounts seen
}

// maxKVMountsPerConnection bounds what one Vault connection remembers: a
// tenant naming many paths cannot grow it without end.
const maxKVMountsPerConnection = 256

type kvMount struct {
	path string // with a trailing slash, e.g. "secret/"
	v2   bool
}

// Resolve returns the path to read for a GET of p. observe is told the
// outcome of each lookup Vault is asked.
func (k *KVPaths) Resolve(ctx context.Context, sess vault.Session, conn, p string, observe func(error)) string {
	m, ok := k.lookup(conn, p)
	if !ok {
		var err error
		m, err = k.ask(ctx, sess, p)
		observe(err)
		if err != nil {
			return p // not confirmed by Vault: as written, and asked again next time
		}
		k.remember(conn, m)
	}
	return m.dataPath(p)
}

// dataPath is the path to read for p on mount m: on KV v2, data/ is
// inserted after the mount unless p names data/ or metadata/ already.
func (m kvMount) dataPath(p string) string {
	if !m.v2 {
		return p
	}
	rest := strings.TrimPrefix(p, m.path)
	if rest == "" || strings.HasPrefix(rest, "data/") || strings.HasPrefix(rest, "metadata/") {
		return p
	}
	return m.path + "data/" + rest
}

func (k *KVPaths) lookup(conn, p string) (kvMount, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	best := kvMount{}
	for _, m := range k.mounts[conn] {
		// p is under m, or is m itself ("secret" for "secret/").
		under := strings.HasPrefix(p, m.path) || strings.HasSuffix(m.path, "/") && p == strings.TrimSuffix(m.path, "/")
		if under && len(m.path) > len(best.path) {
			best = m
		}
	}
	return best, best.path != ""
}

func (k *KVPaths) remember(conn string, m kvMount) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mounts == nil {
		k.mounts = map[string][]kvMount{}
	}
	for _, have := range k.mounts[conn] {
		if have.path == m.path {
			return
		}
	}
	if len(k.mounts[conn]) >= maxKVMountsPerConnection {
		return // looked up on each use from then on
	}
	k.mounts[conn] = append(k.mounts[conn], m)
}

// errNoMount: Vault answered the lookup without naming a mount.
var errNoMount = errors.New("vault named no mount")

// ask looks the mount of p up in Vault. When Vault refuses or does not
// say, the answer is p itself as a mount that is not KV v2.
func (k *KVPaths) ask(ctx context.Context, sess vault.Session, p string) (kvMount, error) {
	asIs := kvMount{path: p + "/"}
	body, err := vault.Do(ctx, sess, vault.Request{Method: http.MethodGet, Path: "sys/internal/ui/mounts/" + p, Small: true})
	if err != nil {
		return asIs, err
	}
	var resp struct {
		Data struct {
			Path    string            `json:"path"`
			Type    string            `json:"type"`
			Options map[string]string `json:"options"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &resp) != nil || resp.Data.Path == "" {
		return asIs, errNoMount
	}
	path := strings.TrimSuffix(resp.Data.Path, "/") + "/"
	return kvMount{path: path, v2: resp.Data.Type == "kv" && resp.Data.Options["version"] == "2"}, nil
}
