package rig

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// secretProviderClassCRD is the driver's SecretProviderClass API, reduced to
// what the provider reads (spec.parameters), so classes are real objects.
const secretProviderClassCRD = `{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "secretproviderclasses.secrets-store.csi.x-k8s.io"},
  "spec": {
    "group": "secrets-store.csi.x-k8s.io",
    "scope": "Namespaced",
    "names": {"plural": "secretproviderclasses", "singular": "secretproviderclass", "kind": "SecretProviderClass", "listKind": "SecretProviderClassList"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
  }
}`

// installClassCRD installs the SecretProviderClass CRD and waits until it is served.
func (r *Rig) installClassCRD(ctx context.Context) error {
	rc := r.Kube.AdminClient.Discovery().RESTClient()
	if _, err := rc.Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").
		SetHeader("Content-Type", "application/json").Body([]byte(secretProviderClassCRD)).DoRaw(ctx); err != nil {
		return fmt.Errorf("SecretProviderClass CRD: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := rc.Get().AbsPath("/apis/secrets-store.csi.x-k8s.io/v1/namespaces", AppNamespace, "secretproviderclasses").DoRaw(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("SecretProviderClass CRD not served: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// CreateClass creates a SecretProviderClass for the vault provider in the app namespace.
func (r *Rig) CreateClass(ctx context.Context, name string, params map[string]string) error {
	body, err := json.Marshal(map[string]any{
		"apiVersion": "secrets-store.csi.x-k8s.io/v1",
		"kind":       "SecretProviderClass",
		"metadata":   map[string]any{"name": name, "namespace": AppNamespace},
		"spec":       map[string]any{"provider": "vault", "parameters": params},
	})
	if err != nil {
		return err
	}
	_, err = r.Kube.AdminClient.Discovery().RESTClient().Post().
		AbsPath("/apis/secrets-store.csi.x-k8s.io/v1/namespaces", AppNamespace, "secretproviderclasses").
		SetHeader("Content-Type", "application/json").Body(body).DoRaw(ctx)
	return err
}
