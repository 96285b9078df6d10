package kube

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// WatchPodDeletions calls gone with the uid of each pod on nodeName that is
// deleted, until ctx ends. Only this node's pods are listed and watched
// (field selector spec.nodeName), so memory stays bounded by the node.
func WatchPodDeletions(ctx context.Context, client kubernetes.Interface, nodeName string, gone func(uid string), log *slog.Logger) error {
	selector := fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	informer := factory.Core().V1().Pods().Informer()
	// Only a pod's identity is needed: keep nothing else in memory.
	if err := informer.SetTransform(podIdentity); err != nil {
		return fmt.Errorf("watching pods on node %s: %w", nodeName, err)
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				gone(string(pod.UID))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods on node %s: %w", nodeName, err)
	}
	factory.Start(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
			log.Info("watching this node's pods to revoke their Vault tokens and leases when they go", "node", nodeName)
		}
	}()
	return nil
}

// podIdentity strips a pod to what the watcher needs.
func podIdentity(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
	}}, nil
}
