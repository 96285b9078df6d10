// Package rig runs the real components the integration tests and the
// benchmark need — etcd, a kube-apiserver and Vault dev servers on
// 127.0.0.1, built by test/tools/build.sh — configures them as an operator
// would, and builds MountRequests the way the driver and the kubelet do.
package rig

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// Rig is a running set of components.
type Rig struct {
	Dir   string
	Kube  *APIServer
	Vault *VaultServer
	// Postgres backs the database secrets engine at database/.
	Postgres *Postgres
	// ReviewerJWT lets Vault call TokenReview.
	ReviewerJWT string
}

// BinDir is where build.sh links the components (VCP_TEST_BIN, default ~/.cache/vcp-test/bin).
func BinDir() string {
	if d := os.Getenv("VCP_TEST_BIN"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "vcp-test", "bin")
}

// Missing names the first component build.sh has not built, or "".
func Missing() string {
	for _, b := range []string{"vault", "kube-apiserver", "etcd", "plugins/kubernetes", "plugins/postgresql-database-plugin", "postgresql/postgres", "helm", "qemu-aarch64", "qemu-s390x", "qemu-ppc64le"} {
		if _, err := os.Stat(filepath.Join(BinDir(), b)); err != nil {
			return filepath.Join(BinDir(), b)
		}
	}
	return ""
}

// Start starts etcd, the kube-apiserver and Vault in dir and configures them.
func Start(ctx context.Context, dir string) (*Rig, error) {
	return StartWith(ctx, dir, VaultOptions{})
}

// StartWith is Start with Vault started as opts say.
func StartWith(ctx context.Context, dir string, opts VaultOptions) (*Rig, error) {
	r := &Rig{Dir: dir}
	kubeReady := make(chan error, 1)
	go func() {
		var err error
		r.Kube, err = StartAPIServer(dir, BinDir())
		kubeReady <- err
	}()
	pgReady := make(chan error, 1)
	go func() {
		var err error
		r.Postgres, err = StartPostgres(dir)
		pgReady <- err
	}()
	var err error
	r.Vault, err = StartVaultWith(dir, BinDir(), "vault", opts)
	kerr, pgerr := <-kubeReady, <-pgReady
	switch {
	case kerr != nil:
		return r, fmt.Errorf("kube-apiserver: %w", kerr)
	case pgerr != nil:
		return r, fmt.Errorf("postgres: %w", pgerr)
	case err != nil:
		return r, fmt.Errorf("vault: %w", err)
	}
	if err := r.bootstrap(ctx); err != nil {
		return r, fmt.Errorf("bootstrap: %w", err)
	}
	return r, nil
}

// Stop stops every component.
func (r *Rig) Stop() {
	if r == nil {
		return
	}
	r.Vault.Stop()
	r.Postgres.Stop()
	r.Kube.Stop()
}

// Pod is a real Pod object in the apiserver; no kubelet runs it.
type Pod struct {
	Name, Namespace, UID, ServiceAccount string
}

// CreatePod creates a pod named prefix-<random> for serviceAccount in the
// app namespace, on nodeName when it is set.
func (r *Rig) CreatePod(ctx context.Context, prefix, serviceAccount, nodeName string) (Pod, error) {
	no := false
	pod, err := r.Kube.AdminClient.CoreV1().Pods(AppNamespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
		Spec: corev1.PodSpec{
			NodeName:                     nodeName,
			ServiceAccountName:           serviceAccount,
			AutomountServiceAccountToken: &no,
			Containers:                   []corev1.Container{{Name: "app", Image: "busybox"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return Pod{}, err
	}
	return Pod{Name: pod.Name, Namespace: pod.Namespace, UID: string(pod.UID), ServiceAccount: serviceAccount}, nil
}

// DeletePod removes the pod at once (no kubelet would confirm a graceful delete).
func (r *Rig) DeletePod(ctx context.Context, pod Pod) error {
	zero := int64(0)
	return r.Kube.AdminClient.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

// Token is a service-account token as the kubelet hands it to the driver.
type Token struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp"`
}

// KubeletToken requests a token the way the kubelet does for the driver:
// bound to the pod, for one audience.
func (r *Rig) KubeletToken(ctx context.Context, pod Pod, audience string) (Token, error) {
	ten := int64(600)
	tr, err := r.Kube.AdminClient.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences: []string{audience}, ExpirationSeconds: &ten,
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: types.UID(pod.UID)},
		}}, metav1.CreateOptions{})
	if err != nil {
		return Token{}, err
	}
	return Token{Token: tr.Status.Token, ExpirationTimestamp: tr.Status.ExpirationTimestamp.Format(time.RFC3339)}, nil
}

// MountRequest builds the request the driver sends for pod with the class's
// params and the tokens the kubelet requested (by audience). With
// inSecrets the tokens travel in the secrets field (driver v1.6 on
// Kubernetes 1.35+).
func MountRequest(pod Pod, params map[string]string, tokens map[string]Token, inSecrets bool, permission string) (*v1alpha1.MountRequest, error) {
	attrs := map[string]string{
		"secretProviderClass": "test-class", // params may name another

		"csi.storage.k8s.io/pod.name":            pod.Name,
		"csi.storage.k8s.io/pod.namespace":       pod.Namespace,
		"csi.storage.k8s.io/pod.uid":             pod.UID,
		"csi.storage.k8s.io/serviceAccount.name": pod.ServiceAccount,
		"csi.storage.k8s.io/ephemeral":           "true",
	}
	for k, v := range params {
		attrs[k] = v
	}
	secrets := "null"
	if len(tokens) > 0 {
		raw, err := json.Marshal(tokens)
		if err != nil {
			return nil, err
		}
		if inSecrets {
			b, err := json.Marshal(map[string]string{"csi.storage.k8s.io/serviceAccount.tokens": string(raw)})
			if err != nil {
				return nil, err
			}
			secrets = string(b)
		} else {
			attrs["csi.storage.k8s.io/serviceAccount.tokens"] = string(raw)
		}
	}
	if permission == "" {
		permission = "420"
	}
	a, err := json.Marshal(attrs)
	if err != nil {
		return nil, err
	}
	return &v1alpha1.MountRequest{Attributes: string(a), Secrets: secrets, Permission: permission, TargetPath: "/unused"}, nil
}

// AuditRequests counts the requests to path in Vault's own audit log.
func (r *Rig) AuditRequests(path string) (int, error) {
	return countAudit(r.AuditLog(), func(typ, p string) bool { return typ == "request" && p == path })
}

func countAudit(file string, match func(typ, path string) bool) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && match(e.Type, e.Request.Path) {
			n++
		}
	}
	return n, sc.Err()
}

// AuditConcurrency is the most requests to path Vault was serving at once,
// from its audit log: each request entry opens one, each response entry
// closes one. Only entries from since on count.
func (r *Rig) AuditConcurrency(path string, since time.Time) (int, error) {
	f, err := os.Open(r.AuditLog())
	if err != nil {
		return 0, err
	}
	defer f.Close()
	type event struct {
		at   time.Time
		open bool
	}
	var events []event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Type    string    `json:"type"`
			Time    time.Time `json:"time"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Request.Path == path && !e.Time.Before(since) {
			events = append(events, event{e.Time, e.Type == "request"})
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })
	open, most := 0, 0
	for _, e := range events {
		if e.open {
			open++
			most = max(most, open)
		} else {
			open--
		}
	}
	return most, sc.Err()
}

// APIRequests counts the requests the apiserver has completed, by verb and
// resource ("GET pods"), from its own apiserver_request_total; watches are
// left out (they count when they end, not when they serve).
func (r *Rig) APIRequests(ctx context.Context) (map[string]int, error) {
	raw, err := r.Kube.AdminClient.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || strings.Contains(line, `verb="WATCH"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("apiserver metrics: %q: %w", line, err)
		}
		counts[label(line, "verb")+" "+label(line, "resource")] += int(n)
	}
	return counts, nil
}

// label is a label's value in a Prometheus sample line.
func label(line, name string) string {
	_, rest, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
