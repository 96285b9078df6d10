package kube

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
)

const (
	hmacKeyField = "key"
	hmacKeyBytes = 32
	// retryEvery bounds how often a failing apiserver is asked again.
	retryEvery = 30 * time.Second
)

// HMACKey holds the key object versions are signed with, kept in a Secret so
// that every provider pod and restart computes the same versions. Safe for
// concurrent use. Key reads the Secret once; Watch keeps the copy current
// (deleting the Secret rotates the key). A missing Secret is created, and
// racing providers all end up with the winner's. Without the apiserver a
// random per-process key is used, and the failure is logged.
type HMACKey struct {
	client    *Core
	namespace string
	name      string
	log       *slog.Logger

	mu         sync.Mutex
	key        []byte
	processKey []byte
	lastTry    time.Time
}

// NewHMACKey returns the key source for Secret namespace/name. client may be nil.
func NewHMACKey(client *Core, namespace, name string, log *slog.Logger) (*HMACKey, error) {
	k := &HMACKey{client: client, namespace: namespace, name: name, log: log, processKey: make([]byte, hmacKeyBytes)}
	if _, err := rand.Read(k.processKey); err != nil {
		return nil, fmt.Errorf("random HMAC key: %w", err)
	}
	if client == nil {
		log.Warn("no Kubernetes access: object versions use a per-process key and change when the provider restarts")
	}
	return k, nil
}

// Key returns the HMAC key.
func (k *HMACKey) Key(ctx context.Context) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key != nil || k.client == nil {
		return k.current()
	}
	if !k.lastTry.IsZero() && time.Since(k.lastTry) < retryEvery {
		return k.current()
	}
	k.lastTry = time.Now()
	key, err := k.getOrCreate(ctx)
	if err != nil {
		k.log.Warn("cannot read or create the HMAC key Secret; using a per-process key until it works",
			"secret", k.namespace+"/"+k.name, "error", err,
			"fix", "grant the provider get and create on secrets named "+k.name+" in namespace "+k.namespace)
		return k.processKey
	}
	k.key = key
	return k.key
}

func (k *HMACKey) current() []byte {
	if k.key != nil {
		return k.key
	}
	return k.processKey
}

// Watch follows the Secret until ctx ends; a deleted one is made anew on the next Key.
func (k *HMACKey) Watch(ctx context.Context) error {
	if k.client == nil {
		return nil
	}
	lw := k.client.listWatch("secrets", k.namespace, fields.OneTermEqualSelector("metadata.name", k.name))
	informer := cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    k.observe,
		UpdateFunc: func(_, obj any) { k.observe(obj) },
		DeleteFunc: func(any) {
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.key != nil {
				k.log.Info("HMAC key Secret deleted: object versions change; a new key is created on the next mount",
					"secret", k.namespace+"/"+k.name)
			}
			k.key, k.lastTry = nil, time.Time{}
		},
	})
	if err != nil {
		return fmt.Errorf("watching Secret %s/%s: %w", k.namespace, k.name, err)
	}
	go informer.Run(ctx.Done())
	return nil
}

func (k *HMACKey) observe(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	key := s.Data[hmacKeyField]
	if len(key) < hmacKeyBytes {
		return // Key reports the problem when it reads the Secret
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key != nil && string(k.key) != string(key) {
		k.log.Info("HMAC key Secret changed: object versions change", "secret", k.namespace+"/"+k.name)
	}
	k.key = key
}

func (k *HMACKey) getOrCreate(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := k.client.Secret(ctx, k.namespace, k.name)
	if apierrors.IsNotFound(err) {
		key := make([]byte, hmacKeyBytes)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		s, err = k.client.CreateSecret(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: k.name, Namespace: k.namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "vault-csi-provider"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{hmacKeyField: key},
		})
		if apierrors.IsAlreadyExists(err) { // another provider won the race: use its key
			s, err = k.client.Secret(ctx, k.namespace, k.name)
		}
	}
	if err != nil {
		return nil, err
	}
	key := s.Data[hmacKeyField]
	if len(key) < hmacKeyBytes {
		return nil, fmt.Errorf("secret %s/%s has no %q of at least %d bytes: delete it and the provider creates a new one", k.namespace, k.name, hmacKeyField, hmacKeyBytes)
	}
	return key, nil
}
