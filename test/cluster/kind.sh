#!/usr/bin/env bash
# The end-to-end setup as users deploy it, on a three-node kind cluster (one
# control plane, two workers), offline:
#
#   kind.sh up       the suite's own Docker engine (docker.sh), the node and
#                    workload images (test/tools/kind-images.sh), the cluster
#                    with pod routes between nodes (kind-network.sh), Vault as
#                    a 3-replica Raft StatefulSet over TLS from a CA made
#                    here, the secrets-store-csi-driver from its own chart,
#                    our image (built from our Dockerfile) from our chart, and
#                    PostgreSQL on this host on the kind network's gateway
#   kind.sh down     delete the cluster, stop PostgreSQL and the engine, and
#                    check that the host is as it was
#   kind.sh env      the exports the bats suite needs
#
# For the suite: stop-vault / start-vault (scale Vault to 0 and back, then
# unseal), vault-unseal (unseal every sealed replica).
#
# It runs beside the local cluster (cluster.sh): other ports (API 26443,
# PostgreSQL 25432), other address ranges (pods 10.245.0.0/16, services
# 10.97.0.0/16), its own containerd and state directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VCP_CACHE:-$HOME/.cache/vcp-test}
bin=${VCP_TEST_BIN:-$cache/bin}
dir=${VCP_KIND_DIR:-/var/tmp/vcp-kind}
name=vcp-e2e
api_port=${VCP_KIND_API_PORT:-26443}
pg_port=${VCP_KIND_PG_PORT:-25432}
pod_subnet=10.245.0.0/16
service_subnet=10.97.0.0/16
vault_node_port=30820
rotation_poll=${VCP_ROTATION_POLL:-10s}
vault_in_cluster=https://vault.vault.svc:8200
# suite: our bats suite's cluster (Vault HA over TLS, PostgreSQL, our
# provider); upstream: what the driver's provider suites start from.
profile=${VCP_KIND_PROFILE:-suite}
# Read by lib.sh.
export who=kind pg_clients=172.16.0.0/12
export PATH=$bin:$bin/postgresql:$PATH
export KUBECONFIG=$dir/kubeconfig
# shellcheck source-path=SCRIPTDIR
source "$here/lib.sh"
# shellcheck disable=SC1090
source <("$here/docker.sh" env)

# --- Vault in the cluster --------------------------------------------------

# vault_pki: the suite's CA, Vault's server certificate (its Service, the
# replicas' names behind the headless Service, 127.0.0.1 for probes) and a
# client certificate for the provider (mutual TLS).
vault_pki() {
	ca vcp-kind-vault-ca
	cert vault vault.vault.svc "" "DNS:vault,DNS:vault.vault,DNS:vault.vault.svc,DNS:vault.vault.svc.cluster.local,DNS:*.vault-internal,DNS:*.vault-internal.vault.svc.cluster.local,IP:127.0.0.1"
	cert provider vault-csi-provider
	kubectl create namespace vault --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kubectl -n vault create secret generic vault-tls --from-file=tls.crt="$dir/pki/vault.crt" \
		--from-file=tls.key="$dir/pki/vault.key" --from-file=ca.crt="$dir/pki/ca.crt" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kubectl create namespace vault-csi --dry-run=client -o yaml | kubectl apply -f - >/dev/null
	kubectl -n vault-csi create secret generic vault-client-tls --from-file=tls.crt="$dir/pki/provider.crt" \
		--from-file=tls.key="$dir/pki/provider.key" --from-file=ca.crt="$dir/pki/ca.crt" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

# vault_objects: a 3-replica Raft StatefulSet, one replica per node, each
# on a local volume of its node (so that a replica restarts where its data
# is); the Service vault (every unsealed replica: standbys forward to the
# active one), vault-active (a NodePort to the active replica, which Vault's
# kubernetes service registration labels, for the host's CLI), the headless
# vault-internal for Raft's retry_join; Vault's own service account as the
# kubernetes auth method's token reviewer. Replicas advertise their full DNS
# names, which resolve in every namespace.
vault_objects() {
	local nodes n pvs=
	nodes=$(kubectl get nodes -o jsonpath='{.items[*].metadata.name}')
	for n in $nodes; do
		pvs+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: vault-$n}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: vcp-vault-local
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /var/lib/vcp-vault, type: DirectoryOrCreate}
  nodeAffinity:
    required:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$n]}]}]
"
	done
	kubectl apply -f - >/dev/null <<EOF
$pvs---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: vcp-vault-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: vault, namespace: vault}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: vault-auth-delegator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:auth-delegator}
subjects: [{kind: ServiceAccount, name: vault, namespace: vault}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: vault-service-registration, namespace: vault}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, update, patch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: vault-service-registration, namespace: vault}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: vault-service-registration}
subjects: [{kind: ServiceAccount, name: vault, namespace: vault}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: vault-config, namespace: vault}
data:
  vault.hcl: |
    disable_mlock = true
    service_registration "kubernetes" {}
    plugin_directory = "/vault/plugins"
    listener "tcp" {
      address = "0.0.0.0:8200"
      cluster_address = "0.0.0.0:8201"
      tls_cert_file = "/vault/tls/tls.crt"
      tls_key_file = "/vault/tls/tls.key"
    }
    # Mutual TLS: only clients with a certificate from the suite's CA.
    listener "tcp" {
      address = "0.0.0.0:8202"
      tls_cert_file = "/vault/tls/tls.crt"
      tls_key_file = "/vault/tls/tls.key"
      tls_require_and_verify_client_cert = true
      tls_client_ca_file = "/vault/tls/ca.crt"
    }
    storage "raft" {
      path = "/vault/data"
      retry_join {
        leader_api_addr = "https://vault-0.vault-internal:8200"
        leader_ca_cert_file = "/vault/tls/ca.crt"
      }
      retry_join {
        leader_api_addr = "https://vault-1.vault-internal:8200"
        leader_ca_cert_file = "/vault/tls/ca.crt"
      }
      retry_join {
        leader_api_addr = "https://vault-2.vault-internal:8200"
        leader_ca_cert_file = "/vault/tls/ca.crt"
      }
    }
---
apiVersion: v1
kind: Service
metadata: {name: vault-internal, namespace: vault}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: vault}
  ports: [{name: api, port: 8200}, {name: cluster, port: 8201}]
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: vault}
spec:
  selector: {app: vault}
  ports: [{name: api, port: 8200}, {name: mtls, port: 8202}]
---
apiVersion: v1
kind: Service
metadata: {name: vault-active, namespace: vault}
spec:
  type: NodePort
  selector: {app: vault, vault-active: "true"}
  ports: [{name: api, port: 8200, nodePort: $vault_node_port}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: vault, namespace: vault}
spec:
  serviceName: vault-internal
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: vault}}
  template:
    metadata: {labels: {app: vault}}
    spec:
      serviceAccountName: vault
      terminationGracePeriodSeconds: 5
      tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {labelSelector: {matchLabels: {app: vault}}, topologyKey: kubernetes.io/hostname}
      containers:
        - name: vault
          image: $vault_image
          imagePullPolicy: Never
          args: [server, -config=/vault/config/vault.hcl]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: VAULT_K8S_NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
            - {name: VAULT_K8S_POD_NAME, value: "\$(POD_NAME)"}
            - {name: VAULT_API_ADDR, value: "https://\$(POD_NAME).vault-internal.vault.svc.cluster.local:8200"}
            - {name: VAULT_CLUSTER_ADDR, value: "https://\$(POD_NAME).vault-internal.vault.svc.cluster.local:8201"}
            - {name: VAULT_RAFT_NODE_ID, value: "\$(POD_NAME)"}
            - {name: VAULT_ADDR, value: "https://127.0.0.1:8200"}
            - {name: VAULT_CACERT, value: /vault/tls/ca.crt}
          ports: [{containerPort: 8200}, {containerPort: 8201}, {containerPort: 8202}]
          # Ready only when unsealed (vault status exits 2 when sealed).
          readinessProbe:
            exec: {command: [vault, status]}
            periodSeconds: 2
            failureThreshold: 2
          volumeMounts:
            - {name: config, mountPath: /vault/config}
            - {name: tls, mountPath: /vault/tls}
            - {name: data, mountPath: /vault/data}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - {name: config, configMap: {name: vault-config}}
        - {name: tls, secret: {secretName: vault-tls}}
        - {name: tmp, emptyDir: {}}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        storageClassName: vcp-vault-local
        resources: {requests: {storage: 1Gi}}
EOF
}

# vault_status POD: its `vault status` as JSON (the command exits 2 when
# sealed, which is no error here).
vault_status() {
	kubectl -n vault exec "$1" -- vault status -format=json 2>/dev/null || true
}

vault_pod_is() { # vault_pod_is POD FIELD VALUE
	[[ $(vault_status "$1" | jq -r ".$2" 2>/dev/null) == "$3" ]]
}

# vault_pod_report POD: what a wait on POD saw, printed before giving up:
# its state and events, its Vault's log, and what `vault status` answers.
vault_pod_report() {
	{
		kubectl -n vault describe pod "$1" | sed -n '/^Status:/p;/^Containers:/,/^Conditions:/p;/^Events:/,$p'
		echo "--- log of $1 (last 40 lines)"
		kubectl -n vault logs "$1" --tail=40
		echo "--- vault status in $1"
		kubectl -n vault exec "$1" -- vault status
		echo "--- nodes"
		kubectl get nodes -o wide
		uptime
	} >&2 2>&1 || true
}

# vault_unseal: every replica, once it has joined the Raft cluster; the key
# goes through stdin (not argv, which ps shows).
vault_unseal() {
	local key p
	key=$(jq -r '.unseal_keys_b64[0]' "$dir/vault-init.json")
	for p in vault-0 vault-1 vault-2; do
		wait_until 180 "$p to run" pod_running vault "$p"
		# A replica that has not joined yet refuses the key: try again.
		local deadline=$((SECONDS + 120))
		until vault_pod_is "$p" sealed false; do
			((SECONDS < deadline)) || { vault_pod_report "$p"; die "$p stays sealed"; }
			printf '%s' "$key" | kubectl -n vault exec -i "$p" -- vault write -format=json sys/unseal key=- >/dev/null 2>&1 || sleep 2
		done
	done
	kubectl -n vault wait --for=condition=Ready pod -l app=vault --timeout=120s >/dev/null
}

pod_running() { [[ $(kubectl -n "$1" get pod "$2" -o 'jsonpath={.status.phase}' 2>/dev/null) == Running ]]; }

vault_up() {
	vault_pki
	vault_objects
	wait_until 180 "vault-0 to run" pod_running vault vault-0 || {
		vault_pod_report vault-0
		exit 1
	}
	if [[ ! -s $dir/vault-init.json ]]; then
		wait_until 60 "vault-0 to answer" vault_pod_is vault-0 initialized false || {
			vault_pod_report vault-0
			exit 1
		}
		(umask 077 && kubectl -n vault exec vault-0 -- vault operator init -key-shares=1 -key-threshold=1 -format=json >"$dir/vault-init.json.tmp")
		mv "$dir/vault-init.json.tmp" "$dir/vault-init.json"
	fi
	vault_unseal
	vault_token=$(jq -r .root_token "$dir/vault-init.json")
	local addr
	addr=$(kubectl get node "$name-control-plane" -o 'jsonpath={.status.addresses[?(@.type=="InternalIP")].address}')
	export VAULT_ADDR=https://$addr:$vault_node_port VAULT_CACERT=$dir/pki/ca.crt VAULT_TLS_SERVER_NAME=vault.vault.svc VAULT_TOKEN=$vault_token
	wait_until 60 "the active Vault through its NodePort" vault status
	# Not a dev server: plugins by checksum, KV v2 at secret/ as users have it.
	local p
	for p in kubernetes postgresql-database-plugin; do
		local type=auth
		[[ $p == postgresql-* ]] && type=database
		vault plugin register -sha256="$(sha256sum "$(readlink -f "$bin/plugins/$p")" | cut -d' ' -f1)" "$type" "$p" >/dev/null
	done
	vault secrets list -format=json | jq -e '."secret/"' >/dev/null || vault secrets enable -path=secret -version=2 kv >/dev/null
}

no_vault_pods() { [[ -z $(kubectl -n vault get pods -l app=vault -o name) ]]; }

vault_stop() {
	kubectl -n vault scale statefulset vault --replicas=0 >/dev/null
	wait_until 120 "Vault's pods to end" no_vault_pods
}

vault_start() {
	kubectl -n vault scale statefulset vault --replicas=3 >/dev/null
	vault_unseal
	# VAULT_ADDR and the CA from the environment kind.sh env prints.
	wait_until 60 "the active Vault through its NodePort" vault status
}

# --- the cluster -------------------------------------------------------------

create_cluster() {
	local node_image=$1
	kind get clusters 2>/dev/null | grep -qx "$name" && return 0
	# The kubelet republishes CSI volumes every 10 s (rotation).
	cat >"$dir/kind.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  apiServerAddress: 127.0.0.1
  apiServerPort: $api_port
  disableDefaultCNI: true
  podSubnet: $pod_subnet
  serviceSubnet: $service_subnet
nodes: [{role: control-plane}, {role: worker}, {role: worker}]
kubeadmConfigPatches:
  - |
    kind: KubeletConfiguration
    syncFrequency: 10s
EOF
	kind create cluster --name "$name" --image "$node_image" --kubeconfig "$KUBECONFIG" --config "$dir/kind.yaml" >&2
	# kind returns when kubeadm join has, which can be before a worker's
	# kubelet has registered its Node: the routes need all three.
	wait_until 120 "the 3 nodes to register with a pod CIDR" nodes_with_cidr 3
	"$here/kind-network.sh" "$pod_subnet"
	kubectl wait --for=condition=Ready node --all --timeout=120s >/dev/null
	kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
}

# nodes_with_cidr N: N nodes are registered, each with its spec.podCIDR.
nodes_with_cidr() {
	[[ $(kubectl get nodes -o jsonpath='{range .items[*]}{.spec.podCIDR}{"\n"}{end}' | grep -c .) -eq $1 ]]
}

install_driver() {
	local chart
	chart=$(driver_chart)
	local csi_version=${driver_image##*:}
	helm upgrade --install csi "$chart" -n kube-system -f "$repo/charts/secrets-store-csi-driver.values.yaml" \
		--set rotationPollInterval="$rotation_poll" \
		--set linux.image.repository="${driver_image%:*}" --set linux.image.tag="$csi_version" --set linux.image.pullPolicy=Never \
		--set linux.crds.image.repository="${crds_image%:*}" --set linux.crds.image.tag="${crds_image##*:}" --set linux.crds.image.pullPolicy=Never \
		--set linux.registrarImage.repository="${registrar_image%:*}" --set linux.registrarImage.tag="${registrar_image##*:}" --set linux.registrarImage.pullPolicy=Never \
		--set linux.livenessProbeImage.repository="${probe_image%:*}" --set linux.livenessProbeImage.tag="${probe_image##*:}" --set linux.livenessProbeImage.pullPolicy=Never \
		--set 'linux.tolerations[0].operator=Exists' "$@" --wait --timeout 5m >/dev/null
	wait_until 120 "every node's kubelet to register the driver" driver_on_every_node
}

driver_on_every_node() {
	local want have
	want=$(kubectl get nodes -o name | wc -l)
	have=$(kubectl get csinode -o 'jsonpath={range .items[*]}{.spec.drivers[*].name}{"\n"}{end}' | grep -c secrets-store.csi.k8s.io)
	((have == want))
}

install_provider() {
	install_provider_chart --set image.repository="${provider_image%:*}" --set image.tag="${provider_image##*:}" \
		--set image.pullPolicy=Never --set vault.address="$vault_in_cluster" \
		--set "extraEnv[0].name=VAULT_CACERT" --set "extraEnv[0].value=/vault/tls/ca.crt" \
		--set "extraVolumes[0].name=vault-tls" --set "extraVolumes[0].secret.secretName=vault-client-tls" \
		--set "extraVolumeMounts[0].name=vault-tls" --set "extraVolumeMounts[0].mountPath=/vault/tls" \
		--set "extraVolumeMounts[0].readOnly=true"
}

# host_state: what the host's network and kernel settings look like, less
# what changes on its own or belongs to the local cluster (its KUBE-/CNI-
# rules, pod veths): up records it, down compares.
host_state() {
	echo "# iptables"
	# No table loaded yet (nothing on the host has used iptables) prints
	# nothing, and grep then fails: that is an empty state, not an error.
	{ iptables-save 2>/dev/null || true; } | { grep -vE '^#|^:|KUBE-|CNI-' || true; } | sed 's/\[[0-9]*:[0-9]*\]//'
	echo "# links"
	ip -o link show | awk -F': ' '{print $2}' | grep -v '^veth' | sed 's/@.*//' | sort
	echo "# routes"
	ip route show | grep -v 'vcp-br0'
	echo "# sysctls"
	sysctl -a 2>/dev/null | grep -E '^(kernel|vm|fs)\.' |
		grep -vE '^(kernel\.(random|ns_last_pid|pty\.nr|sched_domain)|fs\.(dentry|inode|file-nr|quota|aio-nr)|vm\.stat)' || true
}

up() {
	[[ $(id -u) -eq 0 ]] || die "needs root (its own Docker engine)"
	local t0=$SECONDS
	"$repo/test/tools/build.sh" kind
	mkdir -p "$dir/logs" "$dir/pids"
	if [[ -f $dir/profile && $(<"$dir/profile") != "$profile" ]]; then
		die "up already for $(<"$dir/profile"), not $profile: run $0 down first"
	fi
	echo "$profile" >"$dir/profile"
	[[ -f $dir/host-before ]] || host_state >"$dir/host-before"
	"$here/docker.sh" up
	local node_image images
	node_image=$("$repo/test/tools/kind-images.sh" node)
	images=$("$repo/test/tools/kind-images.sh" workloads)
	driver_image=$(grep -m1 /secrets-store-csi-driver: <<<"$images")
	crds_image=$(grep -m1 /secrets-store-csi-driver-crds: <<<"$images")
	registrar_image=$(grep -m1 /csi-node-driver-registrar: <<<"$images")
	probe_image=$(grep -m1 /csi-livenessprobe: <<<"$images")
	vault_image=$(grep -m1 /vault: <<<"$images")
	provider_image=$(grep -m1 /vault-csi-provider: <<<"$images")
	create_cluster "$node_image"
	# shellcheck disable=SC2086 # one image per word
	kind load docker-image --name "$name" $images >&2
	kubectl config view --raw -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$dir/kube-ca.crt"
	# Vault's jwt auth fetches the issuer's discovery document anonymously.
	kubectl create clusterrolebinding vcp-oidc-discovery --clusterrole=system:service-account-issuer-discovery \
		--group=system:unauthenticated --dry-run=client -o yaml | kubectl apply -f - >/dev/null

	if [[ $profile == upstream ]]; then
		up_for_upstream
		say "up in $((SECONDS - t0)) s (for the driver's provider suites); run: source <($0 env)"
		return
	fi
	# PostgreSQL on the kind network's gateway: this host, as the nodes see it.
	pg_host=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' | awk '{print $1}')
	[[ -n $pg_host ]] || die "no gateway address on docker network kind"
	start_postgres

	vault_up
	install_driver
	install_provider
	{
		print_env "$here/kind.sh" "$VAULT_ADDR" https://kubernetes.default.svc "$dir/kube-ca.crt" \
			"$vault_in_cluster" https://kubernetes.default.svc.cluster.local
		cat <<EOF
export VAULT_CACERT=$VAULT_CACERT
export VAULT_TLS_SERVER_NAME=$VAULT_TLS_SERVER_NAME
export E2E_VAULT_MTLS_ADDR=https://vault.vault.svc:8202
export E2E_VAULT_IN_CLUSTER=true
export E2E_VAULT_UNSEAL="$here/kind.sh vault-unseal"
export E2E_NODES="$(kubectl get nodes -o jsonpath='{.items[*].metadata.name}')"
export DOCKER_HOST=$DOCKER_HOST
EOF
	} >"$dir/env.tmp"
	chmod 600 "$dir/env.tmp" && mv "$dir/env.tmp" "$dir/env"
	# shellcheck disable=SC1091
	source "$dir/env"
	"$here/bootstrap.sh" >&2
	say "up in $((SECONDS - t0)) s; run: source <($0 env)"
}

# up_for_upstream: the cluster the driver's own vault.bats and openbao.bats
# expect when their install cases have run: the driver (kubelet tokens for
# both providers' default audiences), and nothing else; their install and
# set-up cases (test/upstream/setup.sh) add Vault, OpenBao's stand-in and
# our provider. Their pods use the driver's e2e busybox image by name.
up_for_upstream() {
	install_driver --set 'tokenRequests[0].audience=vault' --set 'tokenRequests[1].audience=openbao'
	{
		echo "export KUBECONFIG=$KUBECONFIG"
		echo "export DOCKER_HOST=$DOCKER_HOST"
		echo "export PATH=$bin:\$PATH"
		echo "export E2E_VAULT_IMAGE=$vault_image"
		echo "export E2E_PROVIDER_IMAGE=$provider_image"
	} >"$dir/env.tmp"
	chmod 600 "$dir/env.tmp" && mv "$dir/env.tmp" "$dir/env"
}

down() {
	if [[ ! -e $dir && ! -e /run/vcp-kind ]]; then
		verify_clean
		say "down: already stopped; nothing left on this machine"
		return
	fi
	if command -v kind >/dev/null && [[ -S ${DOCKER_HOST#unix://} ]]; then
		kind delete cluster --name "$name" >/dev/null 2>&1 || true
	fi
	stop postgres
	"$here/docker.sh" down
	if [[ -f $dir/host-before ]]; then
		local changed
		changed=$(diff <(cat "$dir/host-before") <(host_state)) || {
			say "down: the host differs from before up (< before, > now):"
			echo "$changed" >&2
			exit 1
		}
		say "down: host iptables rules, links, routes and kernel/vm/fs sysctls as before up"
	fi
	rm -rf "$dir"
	verify_clean
	say "down: nothing left on this machine"
}

# verify_clean: fail, naming it, if anything kind.sh or its engine made is
# still here.
verify_clean() {
	local left=()
	ip -o link show | grep -q 'br-[0-9a-f]\{12\}' && left+=("the kind network's bridge")
	grep -qE ' (/run/vcp-kind|/var/tmp/vcp-kind)' /proc/mounts && left+=("mounts")
	[[ -e /run/vcp-kind ]] && left+=(/run/vcp-kind)
	[[ -e $dir ]] && left+=("$dir")
	if ((${#left[@]})); then
		die "down left: ${left[*]}"
	fi
}

case ${1:-} in
up) up ;;
down) down ;;
env)
	[[ -f $dir/env ]] || die "not up: run $0 up"
	cat "$dir/env"
	;;
stop-vault) vault_stop ;;
start-vault) vault_start ;;
vault-unseal) vault_unseal ;;
*)
	echo "usage: $0 up|down|env|stop-vault|start-vault|vault-unseal" >&2
	exit 2
	;;
esac
