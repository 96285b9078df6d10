package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vaultcsi/vault-csi-provider/auth"
)

// ErrPodIdentity means a mount request's pod attributes do not describe a
// pod of this node as the Kubernetes API sees it.
var ErrPodIdentity = errors.New("pod attributes do not match the pod")

// PodDirectory is this node's pods as the API sees them (kube.Pods).
type PodDirectory interface {
	// Synced reports whether the first list is in; before, nothing is checked.
	Synced() bool
	// Lookup returns the pod of uid on this node.
	Lookup(uid string) (auth.Pod, bool)
}

// podSeenWithin is how long a mount waits for a new pod to reach the
// watcher: the kubelet mounts volumes moments after the pod is bound.
const podSeenWithin = 3 * time.Second

// checkPod refuses a request whose pod (uid, namespace, name, service
// account) is not one of this node's pods: sessions, leases and tokens are
// kept per pod, so a request must not speak for another pod.
func (m *Mounter) checkPod(ctx context.Context, claimed auth.Pod) error {
	if m.Pods == nil || !m.Pods.Synced() {
		return nil
	}
	seen, ok := m.Pods.Lookup(claimed.UID)
	for deadline := time.Now().Add(podSeenWithin); !ok && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		seen, ok = m.Pods.Lookup(claimed.UID)
	}
	if !ok {
		return fmt.Errorf("%w: pod %s (uid %s) is not a pod of this node as the Kubernetes API sees it; the pod attributes of a mount come from the kubelet of the pod's node",
			ErrPodIdentity, claimed, claimed.UID)
	}
	var differ []string
	for _, f := range []struct{ name, claimed, seen string }{
		{"namespace", claimed.Namespace, seen.Namespace}, {"name", claimed.Name, seen.Name}, {"service account", claimed.ServiceAccount, seen.ServiceAccount},
	} {
		if f.claimed != f.seen {
			differ = append(differ, fmt.Sprintf("%s %q (the pod's is %q)", f.name, f.claimed, f.seen))
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("%w: the request for pod uid %s says %s", ErrPodIdentity, claimed.UID, strings.Join(differ, ", "))
	}
	return nil
}
