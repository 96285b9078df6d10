# Shared by every .bats file: one namespace per file, SecretProviderClasses
# and pods as users write them, and waits on what users watch (pod phase,
# events, files read inside the pod).
#
# Needs the environment `test/cluster/cluster.sh env` or `test/cluster/kind.sh
# env` prints: KUBECONFIG, VAULT_ADDR, VAULT_TOKEN, E2E_VAULT_ADDR_IN_CLUSTER,
# E2E_ROTATION_POLL, E2E_PG_HOST, E2E_PG_PORT, E2E_PROVIDER_RESTART,
# E2E_VAULT_STOP, E2E_VAULT_START, E2E_PROVIDER_CHART; and an image with sh, cat and stat
# (E2E_IMAGE, default localhost/busybox:e2e).

bats_load_library bats-support
bats_load_library bats-assert

: "${E2E_IMAGE:=localhost/busybox:e2e}"
: "${E2E_IMAGE_PULL_POLICY:=Never}"
: "${E2E_POD_TIMEOUT:=90}"

# setup_file in every .bats file calls this: a fresh namespace with the app
# service account (bound by the e2e Vault roles) and an intruder (bound by none).
e2e_namespace() {
	NS=e2e-$(basename "$BATS_TEST_FILENAME" .bats | tr -c 'a-z0-9\n' '-')-$RANDOM
	export NS
	kubectl create namespace "$NS" >/dev/null
	kubectl label namespace "$NS" vcp-e2e=true >/dev/null
	kubectl -n "$NS" create serviceaccount app >/dev/null
	kubectl -n "$NS" create serviceaccount intruder >/dev/null
	# The namespace's default service account appears asynchronously.
	wait_for 30 kubectl -n "$NS" get serviceaccount default
}

e2e_namespace_delete() {
	kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}

# wait_for SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 1
	done
}

# spc NAME [NAMESPACE] < parameters: a SecretProviderClass with the given
# parameters block (YAML, indented by 4) and the cluster's Vault address.
# Extra spec fields (secretObjects) come from SPC_EXTRA.
spc() {
	local name=$1 ns=${2:-$NS} params
	params=$(cat)
	kubectl apply -f - >/dev/null <<EOF
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: $name, namespace: $ns}
spec:
  provider: vault
  parameters:
    vaultAddress: $E2E_VAULT_ADDR_IN_CLUSTER
$params
${SPC_EXTRA:-}
EOF
}

# pod NAME CLASS [SERVICE_ACCOUNT] [CLASS2]: a pod mounting CLASS at
# /mnt/secrets (and CLASS2 at /mnt/secrets2) that sleeps. POD_EXTRA adds
# container fields (env).
pod() {
	local name=$1 class=$2 sa=${3:-app} class2=${4:-} mounts vols
	mounts="        - {name: secrets, mountPath: /mnt/secrets, readOnly: true}"
	vols="    - name: secrets
      csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: $class}}"
	if [[ -n $class2 ]]; then
		mounts+="
        - {name: secrets2, mountPath: /mnt/secrets2, readOnly: true}"
		vols+="
    - name: secrets2
      csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: $class2}}"
	fi
	kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $NS}
spec:
  serviceAccountName: $sa
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: $E2E_IMAGE
      imagePullPolicy: $E2E_IMAGE_PULL_POLICY
      command: ["sh", "-c", "sleep 100000"]
${POD_EXTRA:-}
      volumeMounts:
$mounts
  volumes:
$vols
EOF
}

# wait_running POD: the pod runs, else fail showing its events.
wait_running() {
	if ! kubectl -n "$NS" wait --for=condition=Ready "pod/$1" --timeout="${E2E_POD_TIMEOUT}s" >/dev/null; then
		echo "pod $1 did not start; its events:" >&2
		events "$1" >&2
		return 1
	fi
}

# csidriver_audiences JSON: the driver's CSIDriver requests tokens for
# these audiences (kubelet sees the change at once).
csidriver_audiences() {
	kubectl patch csidriver secrets-store.csi.k8s.io --type=merge -p "{\"spec\":{\"tokenRequests\":$1}}" >/dev/null
}

# provider_set KEY=VALUE: helm upgrade our chart with one value changed, and
# wait until every node's provider runs with it.
provider_set() {
	helm upgrade vault-csi-provider "$E2E_PROVIDER_CHART" -n vault-csi --reuse-values --set "$1" >/dev/null
	kubectl -n vault-csi rollout status daemonset/vault-csi-provider --timeout=180s >/dev/null
}

# events POD: the pod's event messages, one per line.
events() {
	kubectl -n "$NS" get events --field-selector "involvedObject.name=$1" \
		-o 'jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}'
}

# wait_event POD PATTERN: an event of the pod matches PATTERN (grep -E);
# prints the matching events.
wait_event() {
	local deadline=$((SECONDS + E2E_POD_TIMEOUT))
	until events "$1" | grep -E -- "$2"; do
		if ((SECONDS >= deadline)); then
			echo "no event of pod $1 matched '$2'; its events:" >&2
			events "$1" >&2
			return 1
		fi
		sleep 1
	done
}

# in_pod POD CMD...: run CMD inside the pod's container.
in_pod() {
	local pod=$1
	shift
	kubectl -n "$NS" exec "$pod" -- "$@"
}

# file_is POD PATH CONTENT: the file in the pod holds exactly CONTENT.
file_is() {
	[[ $(in_pod "$1" cat "$2" 2>/dev/null) == "$3" ]]
}

# version POD CLASS OBJECT: the object's version in the pod's
# SecretProviderClassPodStatus.
version() {
	kubectl -n "$NS" get secretproviderclasspodstatus "$1-$NS-$2" \
		-o "jsonpath={.status.objects[?(@.id==\"$3\")].version}"
}

# vault_kv PATH KEY=VALUE...: write a KV v2 secret.
vault_kv() {
	local path=$1
	shift
	vault kv put -mount=secret "$path" "$@" >/dev/null
}

# rotation_wait: the driver's poll interval plus margin, in seconds.
rotation_wait() {
	local poll=${E2E_ROTATION_POLL%s}
	echo $((poll * 3 + 10))
}
