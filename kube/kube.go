// Package kube connects the provider to the Kubernetes API.
package kube

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"context"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// ErrNoKubernetes means neither a kubeconfig nor in-cluster config exists.
var ErrNoKubernetes = errors.New("no Kubernetes access: not running in a cluster and no -kubeconfig or KUBECONFIG given")

const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Clients are typed for core/v1 and TokenRequests, dynamic for SecretProviderClasses.
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

// Core makes the few core/v1 calls the provider needs (pods, the HMAC key's
// Secret, TokenRequests): a REST client over a scheme of two groups, where
// client-go's kubernetes.Interface links every group, tens of MiB unused.
type Core struct {
	rest rest.Interface
}

// coreScheme knows the only types the provider reads or writes.
func coreScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, authenticationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return scheme, nil
}

// NewCore returns the core/v1 client for cfg.
func NewCore(cfg *rest.Config) (*Core, error) {
	scheme, err := coreScheme()
	if err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, err
	}
	return &Core{rest: client}, nil
}

// Pod reads the pod namespace/name.
func (c *Core) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := c.rest.Get().Namespace(namespace).Resource("pods").Name(name).Do(ctx).Into(pod)
	return pod, err
}

// Secret reads the Secret namespace/name.
func (c *Core) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := c.rest.Get().Namespace(namespace).Resource("secrets").Name(name).Do(ctx).Into(s)
	return s, err
}

// CreateSecret creates s in its namespace.
func (c *Core) CreateSecret(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
	created := &corev1.Secret{}
	err := c.rest.Post().Namespace(s.Namespace).Resource("secrets").Body(s).Do(ctx).Into(created)
	return created, err
}

// CreateToken asks the TokenRequest API for namespace/serviceAccount's token.
func (c *Core) CreateToken(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	resp := &authenticationv1.TokenRequest{}
	err := c.rest.Post().Namespace(namespace).Resource("serviceaccounts").Name(serviceAccount).SubResource("token").
		Body(req).Do(ctx).Into(resp)
	return resp, err
}

// listWatch lists and watches resource in namespace ("": all), for an informer.
func (c *Core) listWatch(resource, namespace string, selector fields.Selector) *cache.ListWatch {
	return cache.NewListWatchFromClient(c.rest, resource, namespace, selector)
}
