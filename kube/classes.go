package kube

import (
	"context"
	"fmt"
	"log/slog"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

var classes = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}

// Classes reads SecretProviderClasses' parameters from a watch of every
// class, so a mount makes no apiserver call; a class the watch has not seen
// yet is read with a GET.
type Classes struct {
	client   dynamic.Interface
	informer cache.SharedIndexInformer
}

// WatchClasses starts the watch until ctx ends.
func WatchClasses(ctx context.Context, client dynamic.Interface, log *slog.Logger) (*Classes, error) {
	informer := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.Resource(classes).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.Resource(classes).Watch(ctx, o)
		},
	}, &unstructured.Unstructured{}, 0, cache.Indexers{})
	if err := informer.SetTransform(classParametersOnly); err != nil {
		return nil, fmt.Errorf("watching SecretProviderClasses: %w", err)
	}
	go informer.Run(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
			log.Info("watching SecretProviderClasses: pod override checks read them from memory")
		}
	}()
	return &Classes{client: client, informer: informer}, nil
}

// Parameters returns spec.parameters of the class namespace/name.
func (c *Classes) Parameters(ctx context.Context, namespace, name string) (map[string]string, error) {
	if c.informer.HasSynced() {
		if obj, ok, err := c.informer.GetStore().GetByKey(namespace + "/" + name); err == nil && ok {
			return parametersOf(obj.(*unstructured.Unstructured))
		}
	}
	_, params, err := Class(ctx, c.client, namespace, name)
	return params, err
}

// Class GETs spec.provider and spec.parameters of the class namespace/name.
func Class(ctx context.Context, client dynamic.Interface, namespace, name string) (string, map[string]string, error) {
	obj, err := client.Resource(classes).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", nil, err
	}
	provider, _, _ := unstructured.NestedString(obj.Object, "spec", "provider")
	params, err := parametersOf(obj)
	return provider, params, err
}

func parametersOf(obj *unstructured.Unstructured) (map[string]string, error) {
	params, _, err := unstructured.NestedStringMap(obj.Object, "spec", "parameters")
	if err != nil {
		return nil, fmt.Errorf("SecretProviderClass %s/%s: spec.parameters: %w", obj.GetNamespace(), obj.GetName(), err)
	}
	return params, nil
}

// classParametersOnly keeps of a class what the check reads.
func classParametersOnly(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	kept := &unstructured.Unstructured{Object: map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind()}}
	kept.SetNamespace(u.GetNamespace())
	kept.SetName(u.GetName())
	kept.SetResourceVersion(u.GetResourceVersion())
	if params, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "parameters"); ok {
		_ = unstructured.SetNestedField(kept.Object, params, "spec", "parameters")
	}
	return kept, nil
}
