#!/usr/bin/env bash
# Configures Vault for a cluster, as a platform team would. Vault outside
# the cluster (../shared/seeds), the default:
#   - a reviewer service account (system:auth-delegator) whose long-lived
#     token lets Vault's kubernetes auth call TokenReview;
# Vault inside it (E2E_VAULT_IN_CLUSTER=true, kind.sh): Vault's own service
# account, bound to system:auth-delegator by kind.sh, is the reviewer, and
# the auth method reads its token and the cluster's CA from the pod. Both:
#   - kubernetes auth at kubernetes/ (roles e2e and e2e-custom-audience);
#   - jwt auth at jwt/ through OIDC discovery of the cluster's issuer, and at
#     jwt-keys/ with the issuer's public key (jwt_validation_pubkeys);
#   - KV v1 at kv/, PKI at pki/,
#     PostgreSQL dynamic credentials at database/ (KV v2 at secret/ is the
#     dev server's, or kind.sh's).
# Reads the cluster from the environment that `cluster.sh env` or
# `kind.sh env` prints. Safe to run again.
set -euo pipefail

: "${VAULT_ADDR:?}" "${VAULT_TOKEN:?}" "${KUBECONFIG:?}" "${E2E_KUBE_HOST:?}" "${E2E_KUBE_CA:?}"
: "${E2E_ISSUER:?}" "${E2E_PG_HOST:?}" "${E2E_PG_PORT:?}" "${E2E_PG_PASSWORD:?}"

say() { echo "bootstrap: $*" >&2; }

# Kubernetes: the reviewer and its token (Vault outside the cluster).
reviewer() {
	kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: vault-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: vault-reviewer, namespace: vault-system}
---
apiVersion: v1
kind: Secret
metadata:
  name: vault-reviewer-token
  namespace: vault-system
  annotations: {kubernetes.io/service-account.name: vault-reviewer}
type: kubernetes.io/service-account-token
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vault-reviewer-auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{kind: ServiceAccount, name: vault-reviewer, namespace: vault-system}]
EOF
	reviewer_jwt=
	for _ in $(seq 1 60); do
		reviewer_jwt=$(kubectl -n vault-system get secret vault-reviewer-token -o 'jsonpath={.data.token}' | base64 -d)
		[[ -n $reviewer_jwt ]] && break
		sleep 0.5
	done
	[[ -n $reviewer_jwt ]] || {
		say "the token controller did not fill vault-system/vault-reviewer-token"
		exit 1
	}
}

enable() { # enable auth|secrets PATH TYPE [args]
	local kind=$1 path=$2 type=$3
	shift 3
	local have
	have=$(vault "$kind" list -format=json) # not piped into grep -q: pipefail and SIGPIPE
	if [[ $have != *"\"$path/\""* ]]; then
		vault "$kind" enable -path="$path" "$@" "$type" >/dev/null
	fi
}

vault policy write e2e - >/dev/null <<'EOF'
path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read"] }
path "kv/*" { capabilities = ["read"] }
path "pki/issue/*" { capabilities = ["create", "update"] }
path "database/creds/*" { capabilities = ["read"] }
EOF

# kubernetes auth: TokenReview through the reviewer.
enable auth kubernetes kubernetes
if [[ ${E2E_VAULT_IN_CLUSTER:-} == true ]]; then
	vault write auth/kubernetes/config kubernetes_host="$E2E_KUBE_HOST" >/dev/null
else
	reviewer
	# The reviewer's token through stdin, not argv (which ps shows).
	printf '%s' "$reviewer_jwt" | vault write auth/kubernetes/config kubernetes_host="$E2E_KUBE_HOST" \
		kubernetes_ca_cert=@"$E2E_KUBE_CA" token_reviewer_jwt=@/dev/stdin >/dev/null
fi
vault write auth/kubernetes/role/e2e bound_service_account_names=app bound_service_account_namespaces='*' \
	audience=vault token_policies=e2e token_ttl=10m >/dev/null
vault write auth/kubernetes/role/e2e-custom-audience bound_service_account_names=app \
	bound_service_account_namespaces='*' audience=custom-audience token_policies=e2e token_ttl=10m >/dev/null

# jwt auth, two ways to trust the issuer.
jwt_role() {
	vault write "auth/$1/role/e2e" - >/dev/null <<EOF
{"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["vault"], "bound_claims_type": "glob",
 "bound_claims": {"sub": "system:serviceaccount:*:app"}, "token_policies": ["e2e"], "token_ttl": "10m"}
EOF
}
enable auth jwt jwt
vault write auth/jwt/config oidc_discovery_url="$E2E_ISSUER" oidc_discovery_ca_pem=@"$E2E_KUBE_CA" >/dev/null
jwt_role jwt
enable auth jwt-keys jwt
if [[ -n ${E2E_SA_PUBLIC_KEY:-} ]]; then
	vault write auth/jwt-keys/config jwt_validation_pubkeys=@"$E2E_SA_PUBLIC_KEY" bound_issuer="$E2E_ISSUER" >/dev/null
else
	# kind: the issuer's keys from its JWKS endpoint.
	vault write auth/jwt-keys/config jwks_url="$E2E_ISSUER/openid/v1/jwks" jwks_ca_pem=@"$E2E_KUBE_CA" >/dev/null
fi
jwt_role jwt-keys

# Secrets engines.
enable secrets kv kv -version=1
enable secrets pki pki -max-lease-ttl=24h
if ! vault read pki/cert/ca >/dev/null 2>&1; then
	vault write pki/root/generate/internal common_name=e2e-root ttl=24h >/dev/null 2>&1
fi
vault write pki/roles/e2e allowed_domains=example.com allow_subdomains=true max_ttl=1h >/dev/null
enable secrets database database
vault write database/config/e2e plugin_name=postgresql-database-plugin allowed_roles=e2e \
	connection_url="postgresql://{{username}}:{{password}}@$E2E_PG_HOST:$E2E_PG_PORT/postgres?sslmode=disable" \
	username=postgres password="$E2E_PG_PASSWORD" >/dev/null
vault write database/roles/e2e db_name=e2e default_ttl=1h max_ttl=2h \
	creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';" >/dev/null
say "vault configured at $VAULT_ADDR"
