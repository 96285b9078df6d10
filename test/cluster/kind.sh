#!/usr/bin/env bash
# The same end-to-end setup on kind, where Docker runs:
#
#   kind.sh up     a kind cluster (vcp-e2e), the secrets-store-csi-driver from
#                  its own chart with our values file, our image and chart,
#                  and Vault and PostgreSQL on this host, reachable from the
#                  kind nodes through the kind network's gateway
#   kind.sh down   delete the cluster, stop Vault and PostgreSQL
#   kind.sh env    the exports the bats suite needs
#
# Needs docker, kind (https://kind.sigs.k8s.io), and what test/tools/build.sh
# builds (vault, kubectl, helm, the image packer). The driver's images come
# from registry.k8s.io, so the machine needs the internet.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VCP_CACHE:-$HOME/.cache/vcp-test}
bin=${VCP_TEST_BIN:-$cache/bin}
dir=${VCP_KIND_DIR:-/var/tmp/vcp-kind}
name=vcp-e2e
api_port=${VCP_KIND_API_PORT:-26443}
vault_port=${VCP_VAULT_PORT:-8200}
pg_port=${VCP_PG_PORT:-15432}
rotation_poll=${VCP_ROTATION_POLL:-10s}
provider_image=localhost/vault-csi-provider:e2e
export who=kind # read by lib.sh
export PATH=$bin:$bin/postgresql:$PATH
export KUBECONFIG=$dir/kubeconfig
# shellcheck source-path=SCRIPTDIR
source "$here/lib.sh"

up() {
	if ! command -v docker >/dev/null || ! command -v kind >/dev/null; then
		die "needs docker and kind on PATH"
	fi
	"$repo/test/tools/build.sh" cluster
	mkdir -p "$dir/logs" "$dir/pids"
	if ! kind get clusters 2>/dev/null | grep -qx "$name"; then
		# The issuer is the host-facing API address, so that Vault on this host
		# can fetch its OIDC discovery document; the kubelet republishes CSI
		# volumes every 10 s (rotation).
		kind create cluster --name "$name" --kubeconfig "$KUBECONFIG" --wait 120s --config - <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking: {apiServerAddress: 127.0.0.1, apiServerPort: $api_port}
kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    apiServer:
      extraArgs:
        service-account-issuer: https://127.0.0.1:$api_port
  - |
    kind: KubeletConfiguration
    syncFrequency: 10s
EOF
	fi
	kubectl config view --raw -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$dir/ca.crt"
	kubectl create clusterrolebinding vcp-oidc-discovery --clusterrole=system:service-account-issuer-discovery \
		--group=system:unauthenticated --dry-run=client -o yaml | kubectl apply -f - >/dev/null

	# Vault listens on the kind network's gateway: this host, as the nodes see it.
	vault_host=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | awk '{print $1}')
	[[ -n $vault_host ]] || die "no gateway address on docker network kind"
	echo "$vault_host" >"$dir/vault-host"
	start_vault
	start_postgres

	local csi_chart
	csi_chart=$(driver_chart)
	helm upgrade --install csi "$csi_chart" -n kube-system -f "$repo/charts/secrets-store-csi-driver.values.yaml" \
		--set rotationPollInterval="$rotation_poll" --wait --timeout 5m >/dev/null

	make -C "$repo" --no-print-directory image IMAGE="$provider_image" IMAGE_TAR="$dir/provider.tar" >&2
	kind load image-archive --name "$name" "$dir/provider.tar"
	kind load image-archive --name "$name" "$bin/busybox.tar"
	install_provider_chart --set image.repository="${provider_image%:*}" --set image.tag="${provider_image##*:}" \
		--set image.pullPolicy=Never --set vault.address="http://$vault_host:$vault_port"

	print_env "$here/kind.sh" "http://$vault_host:$vault_port" "https://127.0.0.1:$api_port" "$dir/ca.crt" >"$dir/env"
	# shellcheck disable=SC1091
	source "$dir/env"
	"$here/bootstrap.sh" >&2
	say "up; run: source <($0 env)"
}


down() {
	kind delete cluster --name "$name" >/dev/null 2>&1 || true
	stop vault
	stop postgres
	rm -rf "$dir"
	say "down"
}

case ${1:-} in
up) up ;;
down) down ;;
env)
	[[ -f $dir/env ]] || die "not up: run $0 up"
	cat "$dir/env"
	;;
stop-vault) stop vault ;;
start-vault)
	vault_host=$(cat "$dir/vault-host")
	start_vault
	# shellcheck disable=SC1091
	source "$dir/env"
	"$here/bootstrap.sh" >&2
	;;
*)
	echo "usage: $0 up|down|env" >&2
	exit 2
	;;
esac
