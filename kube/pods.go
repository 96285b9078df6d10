package kube

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// Pods watches this node's pods (field selector spec.nodeName, stripped to
// their identity): it says when one is deleted and who a uid is, for
// checking a mount request's pod attributes.
type Pods struct {
	Node     string
	informer cache.SharedIndexInformer
}

// PodIdentity is what Pods keeps of a pod.
type PodIdentity struct {
	Namespace, Name, UID, ServiceAccount string
}

const byUID = "uid"

// WatchPods watches nodeName's pods until ctx ends; gone gets each deleted uid.
func WatchPods(ctx context.Context, client *Core, nodeName string, gone func(uid string), log *slog.Logger) (*Pods, error) {
	lw := client.listWatch("pods", metav1.NamespaceAll, fields.OneTermEqualSelector("spec.nodeName", nodeName))
	informer := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
	// Only a pod's identity is needed: keep nothing else in memory.
	if err := informer.SetTransform(podIdentity); err != nil {
		return nil, fmt.Errorf("watching pods on node %s: %w", nodeName, err)
	}
	err := informer.AddIndexers(cache.Indexers{byUID: func(obj any) ([]string, error) {
		if pod, ok := obj.(*podRef); ok {
			return []string{string(pod.UID)}, nil
		}
		return nil, nil
	}})
	if err != nil {
		return nil, fmt.Errorf("watching pods on node %s: %w", nodeName, err)
	}
	_, err = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*podRef); ok {
				gone(string(pod.UID))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watching pods on node %s: %w", nodeName, err)
	}
	go informer.Run(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
			log.Info("watching this node's pods to revoke their Vault tokens and leases when they go", "node", nodeName)
		}
	}()
	return &Pods{Node: nodeName, informer: informer}, nil
}

// Synced reports whether the first list of this node's pods is in.
func (p *Pods) Synced() bool { return p.informer.HasSynced() }

// Lookup returns the pod of uid on this node, as last seen.
func (p *Pods) Lookup(uid string) (PodIdentity, bool) {
	objs, err := p.informer.GetIndexer().ByIndex(byUID, uid)
	if err != nil || len(objs) == 0 {
		return PodIdentity{}, false
	}
	pod := objs[0].(*podRef)
	return PodIdentity{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), ServiceAccount: pod.ServiceAccount}, true
}

// podRef is what the watch keeps of a pod: ~300 bytes, not a Pod's 1.2 KB.
type podRef struct {
	metav1.ObjectMeta
	ServiceAccount string
}

func (p *podRef) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (p *podRef) DeepCopyObject() runtime.Object {
	c := &podRef{ServiceAccount: p.ServiceAccount}
	p.DeepCopyInto(&c.ObjectMeta) // ObjectMeta's
	return c
}

// podIdentity strips a pod to what the watcher needs.
func podIdentity(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &podRef{
		ObjectMeta:     metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		ServiceAccount: pod.Spec.ServiceAccountName,
	}, nil
}
