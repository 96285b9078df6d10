// Package mount is `vault-csi-provider mount`: one mount performed as the
// driver would, outside the driver, each step explained.
package mount

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/vaultcsi/vault-csi-provider/auth"
	"github.com/vaultcsi/vault-csi-provider/config"
	"github.com/vaultcsi/vault-csi-provider/kube"
	"github.com/vaultcsi/vault-csi-provider/provider"
	"github.com/vaultcsi/vault-csi-provider/provider/spc"
	"github.com/vaultcsi/vault-csi-provider/vault"
)

const mountUsage = `Usage:
  vault-csi-provider mount --class FILE.yaml --token-file FILE --out DIR
  vault-csi-provider mount --pod NAMESPACE/NAME [--kubeconfig FILE] --out DIR

Performs one mount as the driver would, outside the driver, and explains each
step: the token (audience, subject, expiry), the login (auth mount, role), each
Vault call and each file written. With --class, the SecretProviderClass comes
from a manifest and the pod's identity from the token's claims; with --pod, the
class is read from the cluster (the pod's secrets-store volume) and a token is
minted for the pod's service account. Secret values are never printed.
`

// mountFlags are the command's flags.
type mountFlags struct {
	classFile, tokenFile, podRef, volume, kubeconfig, out, vaultAddr string
	force                                                            bool
	timeout                                                          time.Duration
}

func parseMountFlags(args []string, getenv func(string) string, stderr io.Writer) (mountFlags, error) {
	var f mountFlags
	fs := flag.NewFlagSet("mount", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = fmt.Fprint(stderr, mountUsage); fs.PrintDefaults() }
	fs.StringVar(&f.classFile, "class", "", "SecretProviderClass manifest (YAML)")
	fs.StringVar(&f.tokenFile, "token-file", "", "service-account token (JWT) to log in with, e.g. from kubectl create token")
	fs.StringVar(&f.podRef, "pod", "", "NAMESPACE/NAME of a pod: read its class and mint its token (needs --kubeconfig or KUBECONFIG)")
	fs.StringVar(&f.volume, "volume", "", "with --pod: the secrets-store volume to mount, when the pod has several")
	fs.StringVar(&f.kubeconfig, "kubeconfig", getenv("KUBECONFIG"), "kubeconfig for --pod")
	fs.StringVar(&f.out, "out", "", "directory to write the files to (owner-only: files 0600, directories 0700); it must not exist, or be an empty directory")
	fs.BoolVar(&f.force, "force", false, "write into --out even when it is not empty")
	fs.StringVar(&f.vaultAddr, "vault-addr", "", "Vault address to call instead of the class's vaultAddress, e.g. through kubectl port-forward (default: the class's, else VAULT_ADDR)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "deadline of the whole mount")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.out == "" || (f.podRef == "") == (f.classFile == "" || f.tokenFile == "") {
		fs.Usage()
		return f, errors.New("mount: give --out, and either --class with --token-file or --pod")
	}
	return f, checkOut(f.out, f.force)
}

// checkOut refuses an --out that is a symbolic link, or not empty unless forced.
func checkOut(dir string, force bool) error {
	info, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out: %w", err)
	case info.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("--out %s is a symbolic link: give the real directory", dir)
	case !info.IsDir():
		return fmt.Errorf("--out %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if len(entries) > 0 && !force {
		return fmt.Errorf("--out %s is not empty: give a new directory, or --force to write into it", dir)
	}
	return nil
}

// Run is the command: the tool for a pod stuck in ContainerCreating.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseMountFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	say := func(format string, a ...any) { _, _ = fmt.Fprintf(stdout, format+"\n", a...) }

	in, client, err := loadMountInput(ctx, f, getenv)
	if err != nil {
		return err
	}
	say("class:  %s/%s", in.pod.Namespace, in.class)
	say("pod:    %s (uid %s), service account %s", in.pod, orNone(in.pod.UID), in.pod.ServiceAccount)
	params, vcfg, err := prepareMount(ctx, &in, f, client, getenv)
	if err != nil {
		return err
	}
	from := ""
	if f.vaultAddr != "" { // from this machine the class's address may not resolve
		from = " (--vault-addr)"
		if params.Vault.Address != "" {
			from = fmt.Sprintf(" (--vault-addr, in place of the class's %s)", params.Vault.Address)
			params.Vault.Address = ""
		}
	}
	cfg := config.Layers(vcfg, params.Vault)
	say("token:  %s", describeToken(in.token))
	say("vault:  %s%s, login at auth/%s/login with role %q (audience %q)", cfg.Address, from, cfg.AuthMount, params.Role, params.Audience)

	m, err := troubleshootingMounter(vcfg, f.timeout, client, stdout)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := m.Mount(ctx, params)
	revokeTokens(ctx, m, in.pod, say)
	if err != nil {
		say("FAILED after %s (gRPC code %s):", time.Since(start).Round(time.Millisecond), provider.Code(err))
		say("  %v", err)
		return errors.New("mount failed")
	}
	say("files:  %d, written to %s (versions computed with a local key, not the cluster's)", len(resp.GetFiles()), f.out)
	for _, file := range resp.GetFiles() {
		if err := writeFile(f.out, file.GetPath(), file.GetContents()); err != nil {
			return err
		}
		say("  %-30s %04o %6d bytes", file.GetPath(), file.GetMode(), len(file.GetContents()))
	}
	say("ok in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// loadMountInput reads the class and the pod, from files or from the cluster.
func loadMountInput(ctx context.Context, f mountFlags, getenv func(string) string) (mountInput, auth.Minter, error) {
	if f.podRef == "" {
		in, err := inputFromFiles(f.classFile, f.tokenFile)
		return in, nil, err
	}
	clients, _, err := kube.Connect(f.kubeconfig, getenv)
	if err != nil {
		return mountInput{}, nil, fmt.Errorf("--pod needs cluster access: %w", err)
	}
	in, err := inputFromPod(ctx, clients, f.podRef, f.volume)
	return in, clients.Core, err // Connect succeeded: not nil
}

// prepareMount parses the class as a mount would, and mints the pod's token
// when it came from the cluster. It returns the parsed request and the
// defaults (environment, --vault-addr) the class is layered on.
func prepareMount(ctx context.Context, in *mountInput, f mountFlags, client auth.Minter, getenv func(string) string) (spc.Params, config.Vault, error) {
	defaults, err := config.FromEnv(getenv)
	if err != nil {
		return spc.Params{}, config.Vault{}, err
	}
	if f.vaultAddr != "" {
		defaults.Address = f.vaultAddr
	}
	vcfg := config.Layers(config.Defaults(), defaults)
	parser := spc.Parser{Dialect: in.dialect}
	checked, err := parser.Check(in.params)
	if err != nil {
		return spc.Params{}, config.Vault{}, fmt.Errorf("the class's parameters: %w", err)
	}
	if in.token.Value == "" { // --pod: a token as the kubelet would send, bound to the pod
		if in.token, err = (auth.TokenSource{Kube: client, Fallback: true}).Token(ctx, in.pod, checked.Audience, nil); err != nil {
			return spc.Params{}, config.Vault{}, err
		}
	}
	req, err := spc.NewMountRequest(in.params, in.class, in.pod, checked.Audience, in.token)
	if err != nil {
		return spc.Params{}, config.Vault{}, err
	}
	params, err := parser.Parse(req.GetAttributes(), req.GetSecrets(), req.GetPermission())
	return params, vcfg, err
}

// troubleshootingMounter is a Mounter that explains each step on stdout.
func troubleshootingMounter(vcfg config.Vault, timeout time.Duration, client auth.Minter, stdout io.Writer) (*provider.Mounter, error) {
	keys, err := kube.NewHMACKey(nil, "", "", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	log := slog.New(&stepHandler{w: stdout})
	sessions := auth.NewSessions(1, timeout)
	sessions.Tokens = auth.TokenSource{Kube: client, Fallback: true} // the operator's own kubeconfig mints the pod's token
	sessions.Log = log
	return &provider.Mounter{
		Defaults:        vcfg,
		Clients:         vault.NewClients(timeout),
		Sessions:        sessions,
		Keys:            keys,
		Overrides:       provider.OverridePolicy{Allowed: []string{"*"}}, // the operator's own class
		Log:             log,
		ReadConcurrency: 1, // one step at a time, in order
	}, nil
}

// revokeTokens revokes the Vault token the command logged in with: it is
// not needed once the command ends.
func revokeTokens(ctx context.Context, m *provider.Mounter, pod auth.Pod, say func(string, ...any)) {
	n, err := m.Sessions.RevokePod(context.WithoutCancel(ctx), pod.UID)
	switch {
	case err != nil:
		say("warn:   revoking the Vault token failed (it expires with its TTL): %v", err)
	case n > 0:
		say("token revoked (auth/token/revoke-self)")
	}
}

// mountInput is what one mount needs: the class, the pod and its token.
type mountInput struct {
	class   string
	dialect spc.Dialect // of the class's spec.provider
	params  map[string]string
	pod     auth.Pod
	token   auth.Token // empty with --pod: the provider mints one
}

// classManifest is the part of a SecretProviderClass the command reads.
type classManifest struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Provider   string            `json:"provider"`
		Parameters map[string]string `json:"parameters"`
	} `json:"spec"`
}

func inputFromFiles(classFile, tokenFile string) (mountInput, error) {
	raw, err := os.ReadFile(classFile)
	if err != nil {
		return mountInput{}, fmt.Errorf("--class: %w", err)
	}
	var c classManifest
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return mountInput{}, fmt.Errorf("--class %s: not a SecretProviderClass manifest: %w", classFile, err)
	}
	if c.Kind != "SecretProviderClass" || c.Metadata.Name == "" {
		return mountInput{}, fmt.Errorf("--class %s: want one SecretProviderClass with metadata.name, found kind %q", classFile, c.Kind)
	}
	dialect, err := dialectOf(c.Spec.Provider)
	if err != nil {
		return mountInput{}, fmt.Errorf("--class %s: %w", classFile, err)
	}
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return mountInput{}, fmt.Errorf("--token-file: %w", err)
	}
	token := auth.Token{Value: strings.TrimSpace(string(tok))}
	claims, err := tokenClaims(token.Value)
	if err != nil {
		return mountInput{}, fmt.Errorf("--token-file %s: %w", tokenFile, err)
	}
	token.Expiry = claims.expiry()
	pod := auth.Pod{Namespace: claims.Kubernetes.Namespace, ServiceAccount: claims.Kubernetes.ServiceAccount.Name,
		Name: claims.Kubernetes.Pod.Name, UID: claims.Kubernetes.Pod.UID}
	if pod.Namespace == "" {
		pod.Namespace = c.Metadata.Namespace
	}
	if pod.Name == "" {
		pod.Name = "troubleshooting"
	}
	return mountInput{class: c.Metadata.Name, dialect: dialect, params: c.Spec.Parameters, pod: pod, token: token}, nil
}

func inputFromPod(ctx context.Context, clients kube.Clients, ref, volume string) (mountInput, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || ns == "" || name == "" {
		return mountInput{}, fmt.Errorf("--pod %q: write it as NAMESPACE/NAME", ref)
	}
	pod, err := clients.Core.Pod(ctx, ns, name)
	if err != nil {
		return mountInput{}, fmt.Errorf("--pod %s: %w", ref, err)
	}
	class, err := podClass(pod, volume)
	if err != nil {
		return mountInput{}, fmt.Errorf("--pod %s: %w", ref, err)
	}
	provider, params, err := kube.Class(ctx, clients.Dynamic, ns, class)
	if err == nil {
		var dialect spc.Dialect
		if dialect, err = dialectOf(provider); err == nil {
			return mountInput{class: class, dialect: dialect, params: params, pod: auth.Pod{Namespace: ns, Name: name, UID: string(pod.UID), ServiceAccount: pod.Spec.ServiceAccountName}}, nil
		}
	}
	return mountInput{}, fmt.Errorf("--pod %s: SecretProviderClass %s/%s: %w", ref, ns, class, err)
}

// dialectOf is the language of a class of spec.provider, if it is ours.
func dialectOf(provider string) (spc.Dialect, error) {
	d, ok := spc.DialectNamed(provider)
	if !ok {
		return d, fmt.Errorf("spec.provider is %q: the driver sends it to that provider, not to this one (vault or openbao)", provider)
	}
	return d, nil
}

// podClass names the SecretProviderClass of the pod's secrets-store volume.
func podClass(pod *corev1.Pod, volume string) (string, error) {
	var names []string
	classes := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == "secrets-store.csi.k8s.io" {
			names = append(names, v.Name)
			classes[v.Name] = v.CSI.VolumeAttributes["secretProviderClass"]
		}
	}
	switch {
	case len(names) == 0:
		return "", errors.New("has no secrets-store.csi.k8s.io volume")
	case volume == "" && len(names) > 1:
		return "", fmt.Errorf("has several secrets-store volumes (%s): choose one with --volume", strings.Join(names, ", "))
	case volume == "":
		volume = names[0]
	}
	class, ok := classes[volume]
	switch {
	case !ok:
		return "", fmt.Errorf("has no secrets-store volume %q; its secrets-store volumes: %s", volume, strings.Join(names, ", "))
	case class == "":
		return "", fmt.Errorf("volume %q sets no volumeAttributes.secretProviderClass", volume)
	}
	return class, nil
}

// claims are the parts of a service-account token the command shows.
type claims struct {
	Audience   any    `json:"aud"`
	Subject    string `json:"sub"`
	Issuer     string `json:"iss"`
	Expires    int64  `json:"exp"`
	Kubernetes struct {
		Namespace string `json:"namespace"`
		Pod       struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"pod"`
		ServiceAccount struct {
			Name string `json:"name"`
		} `json:"serviceaccount"`
	} `json:"kubernetes.io"`
}

func (c claims) expiry() time.Time {
	if c.Expires == 0 {
		return time.Time{}
	}
	return time.Unix(c.Expires, 0)
}

// tokenClaims decodes a JWT's payload without checking its signature (Vault
// does that); only for explaining.
func tokenClaims(jwt string) (claims, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return claims{}, errors.New("not a JWT (three dot-separated parts): pass a service-account token, e.g. from kubectl create token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, errors.New("the JWT's payload is not base64url")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return claims{}, errors.New("the JWT's payload is not a JSON object")
	}
	return c, nil
}

func describeToken(t auth.Token) string {
	c, err := tokenClaims(t.Value)
	if err != nil {
		return err.Error()
	}
	exp := "no expiry"
	if !c.expiry().IsZero() {
		left := time.Until(c.expiry()).Round(time.Second)
		exp = fmt.Sprintf("expires %s (in %s)", c.expiry().UTC().Format(time.RFC3339), left)
		if left <= 0 {
			exp = fmt.Sprintf("EXPIRED at %s: mint a new one", c.expiry().UTC().Format(time.RFC3339))
		}
	}
	return fmt.Sprintf("audience %v, subject %s, issuer %s, %s", c.Audience, c.Subject, c.Issuer, exp)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// writeFile writes one file under dir, creating its directories, readable
// by the owner only: these are secrets on an operator's machine. The path
// was checked by the provider (no .., not absolute); an existing symbolic
// link on the way is not followed.
func writeFile(dir, name string, contents []byte) error {
	root, err := os.OpenRoot(mkdirOwner(dir))
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	defer func() { _ = root.Close() }()
	if d := path.Dir(name); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(contents)
	return errors.Join(err, f.Close())
}

// mkdirOwner creates dir (owner-only) if it does not exist yet.
func mkdirOwner(dir string) string {
	_ = os.MkdirAll(dir, 0o700) // OpenRoot reports what failed
	return dir
}

// stepHandler prints the mount's log records as steps, one per line.
type stepHandler struct {
	w io.Writer
}

func (h *stepHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *stepHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-5s %s", strings.ToLower(r.Level.String()), r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}

// WithAttrs drops the mount logger's pod, class and role: the header shows them.
func (h *stepHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h *stepHandler) WithGroup(string) slog.Handler { return h }
