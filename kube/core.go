package kube

import (
	"context"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Core makes the few core/v1 calls the provider needs: pods and the HMAC
// key's Secret (get, list, watch, create) and TokenRequests. It is a REST
// client over a scheme of just core/v1 and authentication/v1, instead of
// client-go's kubernetes.Interface, whose scheme registers every API group
// and so links (and pages in at start) tens of MiB of code never called.
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

// CreateToken asks the TokenRequest API for a token of the service account
// namespace/serviceAccount.
func (c *Core) CreateToken(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	resp := &authenticationv1.TokenRequest{}
	err := c.rest.Post().Namespace(namespace).Resource("serviceaccounts").Name(serviceAccount).SubResource("token").
		Body(req).Do(ctx).Into(resp)
	return resp, err
}

// listWatch lists and watches resource in namespace ("" for all) with a
// field selector, for an informer.
func (c *Core) listWatch(resource, namespace string, selector fields.Selector) *cache.ListWatch {
	return cache.NewListWatchFromClient(c.rest, resource, namespace, selector)
}
