package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"time"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
)

// ErrPodOverride means a pod set a parameter only the class may set.
var ErrPodOverride = errors.New("parameter set by the pod")

// ClassSource reads a SecretProviderClass's spec.parameters.
type ClassSource func(ctx context.Context, namespace, name string) (map[string]string, error)

// OverridePolicy decides which sensitive parameters a pod's volumeAttributes
// may set: the driver merges them over the class's, so a sensitive value
// that differs from the class itself came from the pod.
type OverridePolicy struct {
	// Allowed are the parameters pods may set anyway ("*": all, no check).
	Allowed []string
	// Classes reads the class; nil means it cannot be read.
	Classes ClassSource
}

// NewOverridePolicy allows pods to set the named sensitive parameters ("*": all).
func NewOverridePolicy(allowed []string) (OverridePolicy, error) {
	for _, name := range allowed {
		if name != "*" && !slices.Contains(spc.SensitiveParameters, name) {
			return OverridePolicy{}, fmt.Errorf("-allow-pod-overrides: %q is not a sensitive parameter: use some of %s, or *", name, strings.Join(spc.SensitiveParameters, ", "))
		}
	}
	return OverridePolicy{Allowed: allowed}, nil
}

// check returns an error naming each sensitive parameter the pod set.
func (o OverridePolicy) check(ctx context.Context, p spc.Params) error {
	if slices.Contains(o.Allowed, "*") {
		return nil
	}
	var present []string
	for _, k := range spc.SensitiveParameters {
		if _, ok := p.Attribute(k); ok && !slices.Contains(o.Allowed, k) {
			present = append(present, k)
		}
	}
	if len(present) == 0 {
		return nil
	}
	if o.Classes == nil {
		return fmt.Errorf("%w: cannot check who set %s: the provider has no Kubernetes access to read SecretProviderClass %s/%s; run it with Kubernetes access, or let pods set them with -allow-pod-overrides",
			ErrPodOverride, strings.Join(present, ", "), p.Pod.Namespace, p.Class)
	}
	class, err := o.Classes(ctx, p.Pod.Namespace, p.Class)
	if err != nil {
		return fmt.Errorf("%w: cannot check who set %s: reading SecretProviderClass %s/%s failed (%w); grant the provider get on secretproviderclasses.secrets-store.csi.x-k8s.io, or let pods set them with -allow-pod-overrides",
			ErrPodOverride, strings.Join(present, ", "), p.Pod.Namespace, p.Class, err)
	}
	class = p.ClassParameters(class)
	var byPod []string
	for _, k := range present {
		sent, _ := p.Attribute(k)
		if v, ok := class[k]; !ok || v != sent {
			byPod = append(byPod, k)
		}
	}
	if len(byPod) == 0 {
		return nil
	}
	sort.Strings(byPod)
	return fmt.Errorf("%w: pod %s sets %s in its volumeAttributes; only the SecretProviderClass %q may set them (they choose which Vault gets the pod's token and which files and TLS checks the provider uses): move them to the class, or have the operator allow them with -allow-pod-overrides=%s",
		ErrPodOverride, p.Pod, strings.Join(byPod, ", "), p.Class, strings.Join(byPod, ","))
}

// ErrPodIdentity means a request's pod attributes name no pod of this node.
var ErrPodIdentity = errors.New("pod attributes do not match the pod")

// PodDirectory is this node's pods as the API sees them (kube.Pods).
type PodDirectory interface {
	// Synced reports whether the first list is in; before, nothing is checked.
	Synced() bool
	// Lookup returns the pod of uid on this node.
	Lookup(uid string) (auth.Pod, bool)
}

// podSeenWithin is how long a mount waits for a new pod to reach the watcher.
const podSeenWithin = 3 * time.Second

// checkPod refuses a request whose pod is not one of this node's: sessions,
// leases and tokens are kept per pod, so none may speak for another.
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
