#!/usr/bin/env bash
# What the install and set-up cases of the secrets-store-csi-driver's own
# vault.bats and openbao.bats do with hashicorp's or OpenBao's Helm charts
# and the internet, done here with our chart and local images (run.sh puts
# a call to it in place of each of those cases' bodies):
#
#   setup.sh install-vault       a dev Vault as vault-0 in namespace vault,
#                                http://vault.vault:8200, and our provider
#   setup.sh setup-vault         its KV pairs, kubernetes auth, policy, role
#   setup.sh install-openbao     OpenBao's stand-in (a dev Vault whose CLI
#                                also answers as bao) as openbao-0 in
#                                namespace openbao, and our provider's
#                                openbao socket
#   setup.sh configure-openbao   its KV engine and pairs, auth, policy, role
#
# Needs KUBECONFIG, E2E_VAULT_IMAGE and E2E_PROVIDER_IMAGE (kind.sh env with
# VCP_KIND_PROFILE=upstream).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${VCP_TEST_BIN:-$HOME/.cache/vcp-test/bin}

say() { echo "upstream: $*" >&2; }

# dev_server NAME: a dev server (root token "root") as NAME-0 in namespace
# NAME, behind http://NAME.NAME:8200, its service account allowed to review
# tokens (Vault's kubernetes auth uses it), as the charts' dev mode has it.
dev_server() {
	local n=$1
	kubectl create namespace "$n" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: $n, namespace: $n}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: upstream-$n-tokenreview}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{kind: ServiceAccount, name: $n, namespace: $n}]
---
apiVersion: v1
kind: Service
metadata: {name: $n, namespace: $n}
spec:
  selector: {app: $n}
  ports: [{name: http, port: 8200}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: $n, namespace: $n}
spec:
  serviceName: $n
  replicas: 1
  selector: {matchLabels: {app: $n}}
  template:
    metadata: {labels: {app: $n}}
    spec:
      serviceAccountName: $n
      terminationGracePeriodSeconds: 1
      containers:
        - name: server
          image: $E2E_VAULT_IMAGE
          imagePullPolicy: Never
          args: [server, -dev, -dev-root-token-id=root, -dev-listen-address=0.0.0.0:8200, -dev-plugin-dir=/vault/plugins]
          env:
            # The CLI inside, as vault or as bao, talks to this server.
            - {name: VAULT_ADDR, value: "http://127.0.0.1:8200"}
            - {name: VAULT_TOKEN, value: root}
            - {name: HOME, value: /tmp}
          readinessProbe:
            exec: {command: [vault, status]}
            periodSeconds: 2
          volumeMounts: [{name: tmp, mountPath: /tmp}]
      volumes: [{name: tmp, emptyDir: {}}]
YAML
	kubectl -n "$n" rollout status statefulset/"$n" --timeout=180s >&2
	kubectl wait --for=condition=Ready --timeout=120s pods --all -n "$n" >/dev/null
	# The kubernetes auth method is a plugin in our Vault build: registered
	# by its checksum, as an operator would.
	local sum
	sum=$(sha256sum "$(readlink -f "$bin/plugins/kubernetes")" | cut -d' ' -f1)
	kubectl -n "$n" exec "$n-0" -- vault plugin register -sha256="$sum" auth kubernetes >/dev/null
}

# provider [HELM ARGS]: our chart, with the image kind.sh loaded.
provider() {
	local image=$E2E_PROVIDER_IMAGE
	helm upgrade --install vault-csi-provider "$repo/charts/vault-csi-provider" -n vault-csi --create-namespace \
		--set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never "$@" >/dev/null
	kubectl -n vault-csi rollout status daemonset/vault-csi-provider --timeout=180s >&2
}

# configure NAME CLI ENGINE: kubernetes auth reviewing tokens with NAME-0's
# own service-account token (the server reads it from its pod: the image
# has no cat to hand it over, as the suites do), a read policy on
# ENGINE/data/*, and role csi for the default service account of the
# namespaces the suites use.
configure() {
	local n=$1 cli=$2 engine=$3 host
	host=$(kubectl get service kubernetes -o 'jsonpath={.spec.clusterIP}')
	kubectl -n "$n" exec "$n-0" -- "$cli" auth enable kubernetes >/dev/null
	kubectl -n "$n" exec "$n-0" -- "$cli" write auth/kubernetes/config \
		issuer=https://kubernetes.default.svc.cluster.local \
		kubernetes_host="https://$host:443" kubernetes_ca_cert=@/var/run/secrets/kubernetes.io/serviceaccount/ca.crt >/dev/null
	printf 'path "%s/data/*" {\n  capabilities = ["read"]\n}\n' "$engine" |
		kubectl -n "$n" exec -i "$n-0" -- "$cli" policy write csi - >/dev/null
	kubectl -n "$n" exec "$n-0" -- "$cli" write auth/kubernetes/role/csi \
		bound_service_account_names=default bound_service_account_namespaces=default,test-ns,negative-test-ns \
		policies=csi ttl=20m >/dev/null
}

case ${1:-} in
install-vault)
	dev_server vault
	provider --set providers.vault=true
	;;
setup-vault)
	kubectl -n vault exec vault-0 -- vault kv put secret/foo bar=hello >/dev/null
	kubectl -n vault exec vault-0 -- vault kv put secret/foo1 bar1=hello1 >/dev/null
	configure vault vault secret
	;;
install-openbao)
	dev_server openbao
	provider --reuse-values --set providers.openbao=true
	;;
configure-openbao)
	kubectl -n openbao exec openbao-0 -- bao secrets enable -version=2 -path=secrets kv >/dev/null
	kubectl -n openbao exec openbao-0 -- bao kv put secrets/foo foo=openbao-foo >/dev/null
	kubectl -n openbao exec openbao-0 -- bao kv put secrets/bar bar=openbao-bar >/dev/null
	configure openbao bao secrets
	;;
*)
	echo "usage: $0 install-vault|setup-vault|install-openbao|configure-openbao" >&2
	exit 2
	;;
esac
