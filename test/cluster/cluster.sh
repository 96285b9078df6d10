#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, without Docker:
#
#   cluster.sh up      build what is missing, start everything, install the
#                      provider from our chart with our image, bootstrap Vault
#   cluster.sh down    stop everything and leave the machine as it was
#   cluster.sh env     print the exports the bats suite and a user need
#   cluster.sh status  what runs
#
# Control plane: etcd (Debian, data on tmpfs), kube-apiserver,
# kube-controller-manager, kube-scheduler (1.34.4, built by
# test/tools/build.sh). Node: containerd + runc + a CNI bridge (Debian),
# kubelet, the secrets-store-csi-driver v1.6.1 and its registrar as host
# processes (the driver chart's DaemonSet pulls its images from
# registry.k8s.io, which this machine cannot reach; the chart's other objects,
# CRDs, CSIDriver and RBAC, are applied as rendered, and the driver runs as its
# chart's service account). Our provider runs as the chart's DaemonSet, from
# our image. Vault and PostgreSQL run outside the cluster as host processes.
# Everything listens on 127.0.0.1; pods have a bridge with no gateway.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VCP_CACHE:-$HOME/.cache/vcp-test}
bin=${VCP_TEST_BIN:-$cache/bin}
dir=${VCP_CLUSTER_DIR:-/var/tmp/vcp-cluster}
etcd_dir=/dev/shm/vcp-cluster-etcd
kubelet_dir=/var/lib/vcp-kubelet
containerd_root=/var/lib/vcp-containerd
containerd_state=/run/vcp-containerd
providers_dir=/var/run/secrets-store-csi-providers
vcp_socket_dir=/var/run/vault-csi-provider # the provider chart's providersDir
bridge=vcp-br0
node=$(hostname | tr '[:upper:]' '[:lower:]')
api_port=${VCP_API_PORT:-16443}
vault_port=${VCP_VAULT_PORT:-8200}
pg_port=${VCP_PG_PORT:-15432}
rotation_poll=${VCP_ROTATION_POLL:-10s}
provider_image=localhost/vault-csi-provider:e2e
# Read by lib.sh.
export vault_host=127.0.0.1 vault_token=root pg_host=127.0.0.1 pg_clients='' who=cluster
export PATH=$bin:$PATH
# shellcheck source-path=SCRIPTDIR
source "$here/lib.sh"


kubectl() { command kubectl --kubeconfig "$dir/admin.kubeconfig" "$@"; }




# --- PKI -----------------------------------------------------------------

# kubeconfig NAME: a kubeconfig for the client certificate NAME.
kubeconfig() {
	local name=$1
	cat >"$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: vcp
    cluster:
      server: https://127.0.0.1:$api_port
      certificate-authority: $dir/pki/ca.crt
users:
  - name: $name
    user:
      client-certificate: $dir/pki/$name.crt
      client-key: $dir/pki/$name.key
contexts:
  - name: vcp
    context: {cluster: vcp, user: $name}
current-context: vcp
EOF
}

pki() {
	if [[ ! -f $dir/pki/ca.crt ]]; then
		ca vcp-cluster-ca
		openssl genrsa -out "$dir/pki/sa.key" 2048 2>/dev/null
		openssl rsa -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub" 2>/dev/null
	fi
	cert apiserver kube-apiserver "" "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert admin vcp-admin system:masters
	cert controller-manager system:kube-controller-manager
	cert scheduler system:kube-scheduler
	cert kubelet "system:node:$node" system:nodes
	cert kubelet-serving "$node" "" "DNS:$node,IP:127.0.0.1"
	local n
	for n in admin controller-manager scheduler kubelet; do kubeconfig "$n"; done
}

# --- host changes, recorded so that down undoes exactly them --------------

# The kubelet sets these; down puts the old values back.
sysctls=(vm/overcommit_memory kernel/panic kernel/panic_on_oops)

save_host_state() {
	[[ -f $dir/host-state ]] && return 0
	local s
	for s in "${sysctls[@]}"; do echo "$s $(cat "/proc/sys/$s")"; done >"$dir/host-state"
	if ! getent hosts "$node" | grep -q '^127\.'; then
		# The apiserver reaches the kubelet by the node's name.
		echo "127.0.0.1 $node # vcp-cluster" >>/etc/hosts
		echo "hosts-entry" >>"$dir/host-state"
	fi
}

restore_host_state() {
	[[ -f $dir/host-state ]] || return 0
	local key value
	while read -r key value; do
		case $key in
		hosts-entry) sed -i '/# vcp-cluster$/d' /etc/hosts ;;
		*) echo "$value" >"/proc/sys/$key" 2>/dev/null || true ;;
		esac
	done <"$dir/host-state"
	rm -f "$dir/host-state"
}

# --- components ---------------------------------------------------------

start_etcd() {
	mkdir -p "$etcd_dir"
	start etcd etcd --data-dir "$etcd_dir" --name vcp \
		--listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
		--listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
		--initial-cluster vcp=http://127.0.0.1:12380 --log-level warn
}

start_apiserver() {
	start kube-apiserver kube-apiserver --etcd-servers=http://127.0.0.1:12379 \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
		--endpoint-reconciler-type=none --authorization-mode=Node,RBAC \
		--tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
		--client-ca-file="$dir/pki/ca.crt" \
		--kubelet-client-certificate="$dir/pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$dir/pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="$dir/pki/ca.crt" --kubelet-preferred-address-types=Hostname \
		--service-account-issuer="https://127.0.0.1:$api_port" \
		--service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
		--service-cluster-ip-range=10.96.0.0/24 --cert-dir="$dir/apiserver-certs"
	wait_until 60 "kube-apiserver" kubectl get --raw /readyz
	# Vault's jwt auth fetches the issuer's discovery document anonymously.
	kubectl get clusterrolebinding vcp-oidc-discovery >/dev/null 2>&1 ||
		kubectl create clusterrolebinding vcp-oidc-discovery \
			--clusterrole=system:service-account-issuer-discovery --group=system:unauthenticated >/dev/null
}

start_controllers() {
	start kube-controller-manager kube-controller-manager --kubeconfig="$dir/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
		--root-ca-file="$dir/pki/ca.crt" --service-account-private-key-file="$dir/pki/sa.key" \
		--use-service-account-credentials=true --leader-elect=false \
		--bind-address=127.0.0.1 --secure-port=10257
	start kube-scheduler kube-scheduler --kubeconfig="$dir/scheduler.kubeconfig" \
		--authentication-kubeconfig="$dir/scheduler.kubeconfig" \
		--authorization-kubeconfig="$dir/scheduler.kubeconfig" \
		--leader-elect=false --bind-address=127.0.0.1 --secure-port=10259
}

start_containerd() {
	mkdir -p "$dir/cni" "$dir/cni-ipam" "$containerd_root" "$containerd_state"
	cat >"$dir/cni/10-vcp.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "vcp",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": false, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "dataDir": "$dir/cni-ipam"}}
  ]
}
EOF
	cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$containerd_root"
state = "$containerd_state"
[grpc]
  address = "$containerd_state/containerd.sock"
[ttrpc]
  address = "$containerd_state/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:3.10"
  # This VM lacks CAP_SYS_RESOURCE: without it every sandbox fails in runc.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF
	start containerd containerd --config "$dir/containerd.toml"
	wait_until 30 "containerd" ctr --address "$containerd_state/containerd.sock" version
}

# import_image TARBALL: into containerd's CRI namespace.
import_image() {
	ctr --address "$containerd_state/containerd.sock" -n k8s.io images import --no-unpack=false "$1" >/dev/null
}

start_kubelet() {
	mkdir -p "$kubelet_dir"
	cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $dir/pki/kubelet-serving.crt
tlsPrivateKeyFile: $dir/pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$containerd_state/containerd.sock
# cgroup v1 without systemd on these machines.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
# Republish CSI volumes (rotation) every 10 s instead of every minute.
syncFrequency: 10s
EOF
	start kubelet kubelet --config="$dir/kubelet.yaml" --kubeconfig="$dir/kubelet.kubeconfig" \
		--root-dir="$kubelet_dir" --hostname-override="$node"
	wait_until 90 "node $node Ready" node_ready
}

node_ready() {
	[[ $(kubectl get node "$node" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

# install_driver: the driver chart's CRDs, CSIDriver, service account and
# RBAC as rendered from our values file; the driver and the registrar as host
# processes acting as that service account.
install_driver() {
	local values=$repo/charts/secrets-store-csi-driver.values.yaml t shows=()
	local csi_chart
	csi_chart=$(driver_chart)
	kubectl apply --server-side -f "$csi_chart/crds/" >/dev/null
	for t in csidriver serviceaccount role role_binding role-syncsecret role-syncsecret_binding \
		role-secretproviderclasses-admin role-secretproviderclasses-viewer role-secretproviderclasspodstatuses-viewer; do
		shows+=(--show-only "templates/$t.yaml")
	done
	helm template csi "$csi_chart" -n kube-system --kube-version "$(server_version)" -f "$values" --set rotationPollInterval="$rotation_poll" "${shows[@]}" |
		kubectl apply --server-side -f - >/dev/null
	local token
	token=$(kubectl -n kube-system create token secrets-store-csi-driver --duration=48h)
	# The token goes through the environment, not argv (which ps shows).
	(umask 077 && TOKEN=$token awk '
		/client-certificate:/ { next }
		/client-key:/ { sub(/client-key:.*/, "token: " ENVIRON["TOKEN"]) }
		{ sub(/name: admin/, "name: driver"); sub(/user: admin/, "user: driver"); print }
	' "$dir/admin.kubeconfig" >"$dir/driver.kubeconfig")
	mkdir -p "$kubelet_dir/plugins/csi-secrets-store" "$kubelet_dir/plugins_registry" "$providers_dir" "$vcp_socket_dir"
	start secrets-store-csi-driver secrets-store-csi-driver --kubeconfig="$dir/driver.kubeconfig" \
		--endpoint="unix://$kubelet_dir/plugins/csi-secrets-store/csi.sock" --nodeid="$node" \
		--provider-volume="$providers_dir" --additional-provider-volume-paths="$vcp_socket_dir" \
		--enable-secret-rotation=true --rotation-poll-interval="$rotation_poll" \
		--metrics-addr=127.0.0.1:18095
	wait_until 30 "the driver's socket" test -S "$kubelet_dir/plugins/csi-secrets-store/csi.sock"
	start csi-registrar csi-registrar --csi-address="$kubelet_dir/plugins/csi-secrets-store/csi.sock" \
		--registration-socket="$kubelet_dir/plugins_registry/secrets-store.csi.k8s.io-reg.sock"
	wait_until 60 "the kubelet to register the driver" csinode_has_driver
}

server_version() {
	kubectl get --raw /version | grep -o '"gitVersion": *"[^"]*"' | cut -d'"' -f4
}

csinode_has_driver() {
	kubectl get csinode "$node" -o 'jsonpath={.spec.drivers[*].name}' | grep -q secrets-store.csi.k8s.io
}

# install_provider: our image into containerd, our chart by helm.
install_provider() {
	make -C "$repo" --no-print-directory image IMAGE="$provider_image" IMAGE_TAR="$dir/provider.tar" PLATFORMS= >&2
	import_image "$dir/provider.tar"
	install_provider_chart --kubeconfig "$dir/admin.kubeconfig" -f "$here/provider-values.yaml" \
		--set image.repository="${provider_image%:*}" --set image.tag="${provider_image##*:}" \
		--set "extraEnv[0].name=KUBERNETES_SERVICE_HOST" --set "extraEnv[0].value=127.0.0.1" \
		--set "extraEnv[1].name=KUBERNETES_SERVICE_PORT" --set-string "extraEnv[1].value=$api_port" \
		--set vault.address="http://127.0.0.1:$vault_port"
}




up() {
	[[ $(id -u) -eq 0 ]] || die "needs root (containerd, kubelet, mounts)"
	"$repo/test/tools/build.sh" cluster
	mkdir -p "$dir/logs" "$dir/pids"
	save_host_state
	pki
	local t0=$SECONDS
	start_etcd
	start_apiserver
	start_controllers
	start_containerd
	import_image "$bin/pause.tar"
	import_image "$bin/busybox.tar"
	start_kubelet
	start_vault
	start_postgres
	install_driver
	install_provider
	{
		KUBECONFIG=$dir/admin.kubeconfig print_env "$here/cluster.sh" "http://127.0.0.1:$vault_port" "https://127.0.0.1:$api_port" "$dir/pki/ca.crt"
		echo "export E2E_SA_PUBLIC_KEY=$dir/pki/sa.pub"
	} >"$dir/env"
	# shellcheck disable=SC1091
	source "$dir/env"
	"$here/bootstrap.sh" >&2
	say "up in $((SECONDS - t0)) s; run: source <($0 env)"
}


down() {
	if [[ ! -d $dir ]] && ! running kube-apiserver && ! running kubelet; then
		verify_clean
		say "down: already stopped; nothing left on this machine"
		return 0
	fi
	if [[ -f $dir/admin.kubeconfig ]] && running kube-apiserver; then
		# Let the kubelet unmount pod volumes while the driver still runs.
		kubectl delete namespace -l vcp-e2e=true --wait=false >/dev/null 2>&1 || true
	fi
	stop kubelet
	stop csi-registrar
	stop secrets-store-csi-driver
	if running containerd; then
		local c
		for c in $(container_tasks); do
			ctr --address "$containerd_state/containerd.sock" -n k8s.io tasks kill -s KILL "$c" >/dev/null 2>&1 || true
		done
	fi
	stop containerd
	pkill -KILL -f "containerd-shim-runc-v2 .*-address $containerd_state/" 2>/dev/null || true
	stop kube-scheduler
	stop kube-controller-manager
	stop kube-apiserver
	stop etcd
	stop vault
	stop postgres
	# Mounts left by the kubelet, containerd and CNI, innermost first.
	local m
	awk '{print $2}' /proc/mounts | { grep -E "^($kubelet_dir|$containerd_root|$containerd_state|/run/netns/cni-)" || true; } | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
	rm -f /run/netns/cni-* 2>/dev/null || true
	ip link delete "$bridge" >/dev/null 2>&1 || true
	local cg
	for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
		if [[ -d $cg ]]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
	done
	remove_kubelet_iptables
	restore_host_state
	rm -rf "$kubelet_dir" "$containerd_root" "$containerd_state" "$etcd_dir" "$providers_dir" "$vcp_socket_dir" "$dir"
	verify_clean
	say "down: nothing left on this machine"
}

# verify_clean: fail, naming it, if anything the cluster made is still here.
verify_clean() {
	local left=()
	pgrep -f "containerd-shim-runc-v2 .*-address $containerd_state/" >/dev/null && left+=("containerd shims")
	grep -qE " ($kubelet_dir|$containerd_root|$containerd_state|/run/netns/cni-)" /proc/mounts && left+=("mounts")
	ip link show "$bridge" >/dev/null 2>&1 && left+=("bridge $bridge")
	iptables-save 2>/dev/null | grep -q 'KUBE-' && left+=("iptables KUBE-* rules")
	grep -q '# vcp-cluster$' /etc/hosts && left+=("/etc/hosts entry")
	local d
	for d in "$kubelet_dir" "$containerd_root" "$containerd_state" "$etcd_dir" "$dir"; do
		[[ -e $d ]] && left+=("$d")
	done
	if ((${#left[@]})); then
		die "down left: ${left[*]}"
	fi
}

# remove_kubelet_iptables: the kubelet's KUBE-* chains and the rules that
# jump to them, in every table; nothing else is touched.
remove_kubelet_iptables() {
	local save restore
	for save in iptables-save ip6tables-save; do
		command -v "$save" >/dev/null || continue
		restore=${save/-save/-restore}
		"$save" | grep -q 'KUBE-' || continue
		"$save" | grep -v -- 'KUBE-' | "$restore" || say "could not remove the kubelet's rules with $restore"
	done
}

container_tasks() {
	ctr --address "$containerd_state/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null || true
}

status() {
	local n
	for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet \
		secrets-store-csi-driver csi-registrar vault postgres; do
		if running "$n"; then echo "$n: running"; else echo "$n: stopped"; fi
	done
}

case ${1:-} in
up) up ;;
down) down ;;
env)
	[[ -f $dir/env ]] || die "not up: run $0 up"
	cat "$dir/env"
	;;
status) status ;;
# For the Vault-outage case: stop and start the dev server (a dev server
# keeps nothing, so start re-runs the bootstrap).
stop-vault) stop vault ;;
start-vault)
	start_vault
	# shellcheck disable=SC1091
	source "$dir/env"
	"$here/bootstrap.sh" >&2
	;;
*)
	echo "usage: $0 up|down|env|status" >&2
	exit 2
	;;
esac
