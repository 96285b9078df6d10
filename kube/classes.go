package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/client-go/kubernetes"
)

// ClassParameters returns spec.parameters of the SecretProviderClass
// namespace/name (secrets-store.csi.x-k8s.io/v1).
func ClassParameters(ctx context.Context, client kubernetes.Interface, namespace, name string) (map[string]string, error) {
	raw, err := client.Discovery().RESTClient().Get().
		AbsPath("/apis/secrets-store.csi.x-k8s.io/v1/namespaces", namespace, "secretproviderclasses", name).
		DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var spc struct {
		Spec struct {
			Parameters map[string]string `json:"parameters"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &spc); err != nil {
		return nil, fmt.Errorf("SecretProviderClass %s/%s: %w", namespace, name, err)
	}
	return spc.Spec.Parameters, nil
}
