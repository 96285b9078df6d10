// Package kube connects the provider to the Kubernetes API: building the
// client and keeping the HMAC key for object versions in a Secret.
package kube

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoKubernetes means neither a kubeconfig nor in-cluster config exists.
var ErrNoKubernetes = errors.New("no Kubernetes access: not running in a cluster and no -kubeconfig or KUBECONFIG given")

const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Clients are the provider's two views of the API: typed for core/v1 and
// TokenRequests, dynamic for SecretProviderClasses (a CRD).
type Clients struct {
	Core    *Core
	Dynamic dynamic.Interface
}

// Connect returns clients from kubeconfig when set, else from the in-cluster
// config, and the namespace the provider runs in (POD_NAMESPACE, the service
// account's namespace, the kubeconfig context's namespace, else "default").
func Connect(kubeconfig string, getenv func(string) string) (Clients, string, error) {
	var cfg *rest.Config
	namespace := getenv("POD_NAMESPACE")
	if kubeconfig != "" {
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{})
		c, err := loader.ClientConfig()
		if err != nil {
			return Clients{}, "", fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		cfg = c
		if namespace == "" {
			if ns, _, err := loader.Namespace(); err == nil {
				namespace = ns
			}
		}
	} else {
		c, err := rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return Clients{}, "", ErrNoKubernetes
		}
		if err != nil {
			return Clients{}, "", fmt.Errorf("in-cluster Kubernetes config: %w", err)
		}
		cfg = c
		if namespace == "" {
			if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
				namespace = strings.TrimSpace(string(b))
			}
		}
	}
	if namespace == "" {
		namespace = "default"
	}
	cfg.UserAgent = "vault-csi-provider"
	// A burst of pods starting on a node may each need a TokenRequest.
	cfg.QPS, cfg.Burst = 50, 100
	core, err := NewCore(cfg)
	if err != nil {
		return Clients{}, "", fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return Clients{}, "", fmt.Errorf("kubernetes client: %w", err)
	}
	return Clients{Core: core, Dynamic: dyn}, namespace, nil
}
