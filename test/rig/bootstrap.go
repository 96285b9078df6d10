package rig

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
	AppNamespace      = "demo"
	AppServiceAccount = "app"
	// OtherServiceAccount is bound to no Vault role.
	OtherServiceAccount = "intruder"
	ProviderNamespace   = "vault-csi"
	ReviewerNamespace   = "vault-system"

	KubeRole       = "app"
	CustomAudRole  = "app-custom-audience"
	CustomAudience = "custom-audience"
	JWTRole        = "app-jwt"
	// OpenBaoRole takes tokens of openbao-csi-provider's default audience.
	OpenBaoRole  = "app-openbao"
	ShortTTLRole = "app-short-ttl"
	// RenewableRole issues 4s tokens renewable up to 120s.
	RenewableRole = "app-renewable"

	// Database roles (database/creds/<role>).
	DBRole          = "app"          // long leases
	DBRenewableRole = "app-renewing" // 6s leases renewable up to 60s
	DBFixedRole     = "app-fixed"    // 4s leases that cannot be extended

	// Planted values: they must never show up in a log line or an error.
	PlantedPassword = "PLANTED-SECRET-VALUE-6f1c2a"
	OldPassword     = "first-password-v1"
	LegacyPassword  = "kv1-legacy-password"
)

// bootstrap configures the cluster and Vault as an operator would.
func (r *Rig) bootstrap(ctx context.Context) error {
	if err := r.bootstrapKube(ctx); err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	return r.bootstrapVault(ctx)
}

func (r *Rig) bootstrapKube(ctx context.Context) error {
	c := r.Kube.AdminClient
	for _, ns := range []string{AppNamespace, ProviderNamespace, ReviewerNamespace} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for _, sa := range []struct{ ns, name string }{
		{AppNamespace, AppServiceAccount}, {AppNamespace, OtherServiceAccount}, {ReviewerNamespace, "vault-reviewer"},
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
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: ReviewerNamespace}},
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
	tok, err := c.CoreV1().ServiceAccounts(ReviewerNamespace).CreateToken(ctx, "vault-reviewer",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &day}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	r.ReviewerJWT = tok.Status.Token
	return r.installClassCRD(ctx)
}

// jwksPEM fetches the apiserver's JWKS and returns its keys as PEM, the form
// Vault's jwt_validation_pubkeys takes.
func (r *Rig) jwksPEM(ctx context.Context) ([]string, error) {
	raw, err := r.Kube.AdminClient.Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
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

func (r *Rig) bootstrapVault(ctx context.Context) error {
	v := r.Vault.Root.Logical()
	pubkeys, err := r.jwksPEM(ctx)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	steps := []struct {
		path string
		data map[string]any
	}{
		{"sys/audit/file", map[string]any{"type": "file", "options": map[string]any{"file_path": r.AuditLog()}}},
		{"sys/mounts/kv", map[string]any{"type": "kv", "options": map[string]any{"version": "1"}}},
		{"sys/mounts/pki", map[string]any{"type": "pki", "config": map[string]any{"max_lease_ttl": "87600h"}}},
		{"pki/root/generate/internal", map[string]any{"common_name": "vcp-test-root", "ttl": "87600h"}},
		{"pki/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"}},
		{"sys/policies/acl/app", map[string]any{"policy": `
path "secret/data/*" { capabilities = ["read"] }
path "kv/*" { capabilities = ["read", "update", "create"] }
path "pki/issue/web" { capabilities = ["update"] }
path "database/creds/*" { capabilities = ["read"] }
`}},
		{"sys/auth/kubernetes", map[string]any{"type": "kubernetes"}},
		{"auth/kubernetes/config", map[string]any{
			"kubernetes_host": r.Kube.URL, "kubernetes_ca_cert": string(r.Kube.PKI.CAPEM), "token_reviewer_jwt": r.ReviewerJWT,
		}},
		{"auth/kubernetes/role/" + KubeRole, map[string]any{
			"bound_service_account_names": AppServiceAccount, "bound_service_account_namespaces": AppNamespace,
			"audience": "vault", "token_policies": "app", "token_ttl": "1h",
		}},
		{"auth/kubernetes/role/" + CustomAudRole, map[string]any{
			"bound_service_account_names": AppServiceAccount, "bound_service_account_namespaces": AppNamespace,
			"audience": CustomAudience, "token_policies": "app", "token_ttl": "1h",
		}},
		{"auth/kubernetes/role/" + OpenBaoRole, map[string]any{
			"bound_service_account_names": AppServiceAccount, "bound_service_account_namespaces": AppNamespace,
			"audience": "openbao", "token_policies": "app", "token_ttl": "1h",
		}},
		{"auth/kubernetes/role/" + ShortTTLRole, map[string]any{
			"bound_service_account_names": AppServiceAccount, "bound_service_account_namespaces": AppNamespace,
			"audience": "vault", "token_policies": "app", "token_ttl": "3s", "token_max_ttl": "3s",
		}},
		{"auth/kubernetes/role/" + RenewableRole, map[string]any{
			"bound_service_account_names": AppServiceAccount, "bound_service_account_namespaces": AppNamespace,
			"audience": "vault", "token_policies": "app", "token_ttl": "4s", "token_max_ttl": "120s",
		}},
		{"sys/auth/jwt", map[string]any{"type": "jwt"}},
		{"auth/jwt/config", map[string]any{"jwt_validation_pubkeys": pubkeys, "bound_issuer": r.Kube.Issuer}},
		{"auth/jwt/role/" + JWTRole, map[string]any{
			"role_type": "jwt", "bound_audiences": "vault", "user_claim": "sub",
			"bound_subject":  "system:serviceaccount:" + AppNamespace + ":" + AppServiceAccount,
			"token_policies": "app", "token_ttl": "1h",
		}},
		{"secret/data/app", map[string]any{"data": map[string]any{"username": "demo-user", "password": OldPassword}}},
		{"secret/data/app", map[string]any{"data": map[string]any{
			"username": "demo-user", "password": PlantedPassword,
			"blob": base64.StdEncoding.EncodeToString([]byte("binary\x00bytes")), "hexval": hex.EncodeToString([]byte("hex-decoded")),
			"port": 5432,
		}}},
		{"kv/legacy", map[string]any{"password": LegacyPassword}},
		{"sys/mounts/database", map[string]any{"type": "database"}},
		{"database/config/pg", map[string]any{
			"plugin_name": "postgresql-database-plugin", "connection_url": r.Postgres.ConnectionURL(),
			"username": "postgres", "password": PostgresSuperPassword, "allowed_roles": "*",
		}},
		{"database/roles/" + DBRole, dbRole("1h", "24h")},
		{"database/roles/" + DBRenewableRole, dbRole("6s", "60s")},
		{"database/roles/" + DBFixedRole, dbRole("4s", "4s")},
	}
	for _, s := range steps {
		if _, err := v.WriteWithContext(ctx, s.path, s.data); err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
	}
	return nil
}

func dbRole(ttl, maxTTL string) map[string]any {
	return map[string]any{
		"db_name":             "pg",
		"creation_statements": []string{`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`},
		"default_ttl":         ttl,
		"max_ttl":             maxTTL,
	}
}

// AuditLog is the file Vault writes its audit device to.
func (r *Rig) AuditLog() string { return filepath.Join(r.Dir, "vault-audit.log") }
