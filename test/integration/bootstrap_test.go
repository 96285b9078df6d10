package integration

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	appNamespace      = "demo"
	appServiceAccount = "app"
	// otherServiceAccount is bound to no Vault role.
	otherServiceAccount = "intruder"
	providerNamespace   = "vault-csi"
	reviewerNamespace   = "vault-system"

	kubeRole       = "app"
	customAudRole  = "app-custom-audience"
	customAudience = "custom-audience"
	jwtRole        = "app-jwt"
	shortTTLRole   = "app-short-ttl"

	// Planted values: they must never show up in a log line or an error.
	plantedPassword = "PLANTED-SECRET-VALUE-6f1c2a"
	oldPassword     = "first-password-v1"
	legacyPassword  = "kv1-legacy-password"
)

// bootstrap configures the cluster and Vault as an operator would.
func bootstrap(ctx context.Context) error {
	if err := bootstrapKube(ctx); err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	return bootstrapVault(ctx)
}

func bootstrapKube(ctx context.Context) error {
	c := env.kube.adminClient
	for _, ns := range []string{appNamespace, providerNamespace, reviewerNamespace} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for _, sa := range []struct{ ns, name string }{
		{appNamespace, appServiceAccount}, {appNamespace, otherServiceAccount}, {reviewerNamespace, "vault-reviewer"},
	} {
		if _, err := c.CoreV1().ServiceAccounts(sa.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa.name}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	// Vault reviews tokens as vault-reviewer (system:auth-delegator), as the
	// seed article on kubernetes auth sets it up.
	bindings := []rbacv1.ClusterRoleBinding{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer-auth-delegator"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: reviewerNamespace}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "oidc-discovery-unauthenticated"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
			Subjects:   []rbacv1.Subject{{Kind: "Group", Name: "system:unauthenticated", APIGroup: "rbac.authorization.k8s.io"}},
		},
	}
	for i := range bindings {
		if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &bindings[i], metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	day := int64(24 * 3600)
	tok, err := c.CoreV1().ServiceAccounts(reviewerNamespace).CreateToken(ctx, "vault-reviewer",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &day}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	env.reviewerJWT = tok.Status.Token
	return nil
}

// jwksPEM fetches the apiserver's JWKS and returns its keys as PEM, the form
// Vault's jwt_validation_pubkeys takes.
func jwksPEM(ctx context.Context) ([]string, error) {
	raw, err := env.kube.adminClient.Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	var out []string
	for _, k := range set.Keys {
		der, err := x509.MarshalPKIXPublicKey(k.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the apiserver's JWKS has no keys")
	}
	return out, nil
}

func bootstrapVault(ctx context.Context) error {
	v := env.vault.root.Logical()
	pubkeys, err := jwksPEM(ctx)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	steps := []struct {
		path string
		data map[string]any
	}{
		{"sys/audit/file", map[string]any{"type": "file", "options": map[string]any{"file_path": auditLog()}}},
		{"sys/mounts/kv", map[string]any{"type": "kv", "options": map[string]any{"version": "1"}}},
		{"sys/mounts/pki", map[string]any{"type": "pki", "config": map[string]any{"max_lease_ttl": "87600h"}}},
		{"pki/root/generate/internal", map[string]any{"common_name": "vcp-test-root", "ttl": "87600h"}},
		{"pki/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"}},
		{"sys/policies/acl/app", map[string]any{"policy": `
path "secret/data/*" { capabilities = ["read"] }
path "kv/*" { capabilities = ["read", "update", "create"] }
path "pki/issue/web" { capabilities = ["update"] }
`}},
		{"sys/auth/kubernetes", map[string]any{"type": "kubernetes"}},
		{"auth/kubernetes/config", map[string]any{
			"kubernetes_host": env.kube.url, "kubernetes_ca_cert": string(env.kube.pki.caPEM), "token_reviewer_jwt": env.reviewerJWT,
		}},
		{"auth/kubernetes/role/" + kubeRole, map[string]any{
			"bound_service_account_names": appServiceAccount, "bound_service_account_namespaces": appNamespace,
			"audience": "vault", "token_policies": "app", "token_ttl": "1h",
		}},
		{"auth/kubernetes/role/" + customAudRole, map[string]any{
			"bound_service_account_names": appServiceAccount, "bound_service_account_namespaces": appNamespace,
			"audience": customAudience, "token_policies": "app", "token_ttl": "1h",
		}},
		{"auth/kubernetes/role/" + shortTTLRole, map[string]any{
			"bound_service_account_names": appServiceAccount, "bound_service_account_namespaces": appNamespace,
			"audience": "vault", "token_policies": "app", "token_ttl": "3s", "token_max_ttl": "3s",
		}},
		{"sys/auth/jwt", map[string]any{"type": "jwt"}},
		{"auth/jwt/config", map[string]any{"jwt_validation_pubkeys": pubkeys, "bound_issuer": env.kube.issuer}},
		{"auth/jwt/role/" + jwtRole, map[string]any{
			"role_type": "jwt", "bound_audiences": "vault", "user_claim": "sub",
			"bound_subject":  "system:serviceaccount:" + appNamespace + ":" + appServiceAccount,
			"token_policies": "app", "token_ttl": "1h",
		}},
		{"secret/data/app", map[string]any{"data": map[string]any{"username": "demo-user", "password": oldPassword}}},
		{"secret/data/app", map[string]any{"data": map[string]any{
			"username": "demo-user", "password": plantedPassword,
			"blob": base64.StdEncoding.EncodeToString([]byte("binary\x00bytes")), "hexval": hex.EncodeToString([]byte("hex-decoded")),
			"port": 5432,
		}}},
		{"kv/legacy", map[string]any{"password": legacyPassword}},
	}
	for _, s := range steps {
		if _, err := v.WriteWithContext(ctx, s.path, s.data); err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
	}
	return nil
}

func auditLog() string { return filepath.Join(env.dir, "vault-audit.log") }
