#!/usr/bin/env bats
# What only a multi-node cluster with Vault inside it shows (kind.sh): every
# node's provider, TLS to Vault's Service, Vault losing its leader, our
# chart upgraded under rotating pods, a drained node. On the one-node
# cluster these cases are skipped: run `make e2e-kind`.

load helpers

setup_file() {
	if [[ ${E2E_VAULT_IN_CLUSTER:-} != true ]]; then
		return 0
	fi
	e2e_namespace
	vault_kv "$NS/app" password=cluster-pass
}

setup() {
	[[ ${E2E_VAULT_IN_CLUSTER:-} == true ]] || skip "needs Vault in a multi-node cluster: run make e2e-kind"
}

teardown_file() {
	[[ -z ${NS:-} ]] || e2e_namespace_delete
}

# class NAME [PARAMETER LINES]: the app password from KV v2, with extra
# parameters (indented by 4).
class() {
	spc "$1" <<EOF
    roleName: e2e
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/app, secretKey: password}
${2:-}
EOF
}

# watcher NAME CLASS [NODE]: a pod that checks its file every 200 ms and
# counts, in /tmp/missing, the checks that found it missing or empty.
watcher() {
	local node=${3:+  nodeName: $3}
	kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $NS, labels: {watcher: "$2"}}
spec:
  serviceAccountName: app
  terminationGracePeriodSeconds: 1
$node
  containers:
    - name: app
      image: $E2E_IMAGE
      imagePullPolicy: $E2E_IMAGE_PULL_POLICY
      command: ["sh", "-c", "while :; do [ -s /mnt/secrets/password ] || echo missing >>/tmp/missing; sleep 0.2; done"]
      volumeMounts: [{name: secrets, mountPath: /mnt/secrets, readOnly: true}]
  volumes:
    - name: secrets
      csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: $2}}
EOF
}

# missing_checks POD: how many checks found the file missing or empty.
missing_checks() {
	in_pod "$1" sh -c 'if [ -f /tmp/missing ]; then wc -l </tmp/missing; else echo 0; fi'
}

# all_see LABEL CONTENT: every pod with the label reads CONTENT.
all_see() {
	local p
	for p in $(kubectl -n "$NS" get pods -l "watcher=$1" -o name); do
		file_is "${p#pod/}" /mnt/secrets/password "$2" || return 1
	done
}

# mounts RESULT: the sum over every node's provider of
# vault_csi_provider_mounts_total{result=RESULT}.
mounts() {
	local p sum=0 n
	for p in $(kubectl -n vault-csi get pods -l app.kubernetes.io/name=vault-csi-provider -o name); do
		n=$(kubectl get --raw "/api/v1/namespaces/vault-csi/${p/\//s/}:8081/proxy/metrics" |
			awk -v r="result=\"$1\"" 'index($0, "vault_csi_provider_mounts_total{") == 1 && index($0, r) { s += $2 } END { printf "%d", s }')
		sum=$((sum + n))
	done
	echo "$sum"
}

# warning_events PREFIX: the Warning events of the pods named PREFIX*, one
# line each: COUNT<tab>REASON: MESSAGE (an event without a count counts 1;
# our messages name paths and causes, never a secret).
warning_events() {
	kubectl -n "$NS" get events --field-selector type=Warning \
		-o 'jsonpath={range .items[*]}{.involvedObject.name}{"\t"}{.count}{"\t"}{.reason}: {.message}{"\n"}{end}' |
		awk -F'\t' -v OFS='\t' -v p="$1" 'index($1, p) == 1 { print ($2 == "" ? 1 : $2), $3 }'
}

# warnings PREFIX: how many, counting repeats.
warnings() { warning_events "$1" | awk -F'\t' '{ s += $1 } END { printf "%d", s }'; }

# warning_messages PREFIX: what they said, each once.
warning_messages() { warning_events "$1" | cut -f2- | cut -c1-300 | sort -u; }

active_vault() {
	local p
	for p in vault-0 vault-1 vault-2; do
		if [[ $(kubectl -n vault exec "$p" -- vault status -format=json 2>/dev/null | jq -r .is_self) == true ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

@test "16. every node's provider serves mounts (one pod pinned to each node)" {
	class per-node
	local n
	for n in $E2E_NODES; do watcher "on-$n" per-node "$n"; done
	for n in $E2E_NODES; do
		wait_running "on-$n"
		run in_pod "on-$n" cat /mnt/secrets/password
		assert_output cluster-pass
		run kubectl -n "$NS" get pod "on-$n" -o 'jsonpath={.spec.nodeName}'
		assert_output "$n"
	done
	[[ $(wc -w <<<"$E2E_NODES") -ge 3 ]]
}

@test "17. TLS to Vault's Service: vaultCACertPath, vaultTLSServerName, mutual TLS; a wrong CA or no client certificate fails naming the fix" {
	class tls-ca '    vaultCACertPath: /vault/tls/ca.crt'
	local ip
	ip=$(kubectl -n vault get service vault -o 'jsonpath={.spec.clusterIP}')
	# An address that is not in Vault's certificate, with the name that is.
	class tls-name "    vaultAddress: https://$ip:8200
    vaultCACertPath: /vault/tls/ca.crt
    vaultTLSServerName: vault.vault.svc"
	class tls-mtls "    vaultAddress: $E2E_VAULT_MTLS_ADDR
    vaultCACertPath: /vault/tls/ca.crt
    vaultTLSClientCertPath: /vault/tls/tls.crt
    vaultTLSClientKeyPath: /vault/tls/tls.key"
	class tls-wrong-ca '    vaultCACertPath: /etc/ssl/certs/ca-certificates.crt'
	class tls-no-client "    vaultAddress: $E2E_VAULT_MTLS_ADDR
    vaultCACertPath: /vault/tls/ca.crt"
	local c
	for c in tls-ca tls-name tls-mtls tls-wrong-ca tls-no-client; do pod "$c" "$c"; done
	for c in tls-ca tls-name tls-mtls; do
		wait_running "$c"
		run in_pod "$c" cat /mnt/secrets/password
		assert_output cluster-pass
	done
	run wait_event tls-wrong-ca 'FailedMount: .*TLS verification of vault at'
	assert_success
	assert_output --partial "x509: certificate signed by unknown authority"
	assert_output --partial "set vaultCACertPath"
	run wait_event tls-no-client 'FailedMount: .*refused the TLS handshake'
	assert_success
	assert_output --partial "vaultTLSClientCertPath"
	# Their retries would count among the next cases' failed mounts.
	kubectl -n "$NS" delete pod tls-wrong-ca tls-no-client --wait=true >/dev/null
}

@test "18. Vault loses its leader while 30 pods mount and rotate: no pod loses its files, rotation resumes" {
	class leader
	local i
	for i in $(seq 1 30); do watcher "lead-$i" leader; done
	kubectl -n "$NS" wait --for=condition=Ready pod -l watcher=leader --timeout=180s >/dev/null
	local ok0 err0 leader t0
	ok0=$(mounts success) err0=$(mounts error)
	leader=$(active_vault)
	t0=$SECONDS
	kubectl -n vault delete pod "$leader" --wait=false >/dev/null
	# A new version, written once a new leader serves.
	wait_for 60 vault_kv "$NS/app" password=after-leader-loss
	local written=$((SECONDS - t0))
	wait_for "$(rotation_wait)" all_see leader after-leader-loss
	local converged=$((SECONDS - t0)) missing=0
	for i in $(seq 1 30); do missing=$((missing + $(missing_checks "lead-$i"))); done
	echo "# leader loss ($leader deleted): new version written after ${written}s, all 30 pods had it after ${converged}s (the longest a pod waited for it: $((converged - written))s after the write); mounts attempted $(($(mounts success) + $(mounts error) - ok0 - err0)), failed $(($(mounts error) - err0)); checks that found a file missing: $missing" >&3
	assert_equal "$missing" 0
	$E2E_VAULT_UNSEAL
	kubectl -n "$NS" delete pod -l watcher=leader --wait=false >/dev/null
	# Vault's Service may have no ready endpoint for a moment after the unseal.
	wait_for 60 vault_kv "$NS/app" password=cluster-pass
}

@test "19. helm upgrade of our chart while pods rotate every 10 s: no pod ever sees a missing or empty file" {
	class upgrade
	local i
	for i in $(seq 1 10); do watcher "up-$i" upgrade; done
	kubectl -n "$NS" wait --for=condition=Ready pod -l watcher=upgrade --timeout=120s >/dev/null
	local t0=$SECONDS warnings0
	warnings0=$(warnings up-)
	# A changed value rolls the DaemonSet, node by node.
	provider_set "podAnnotations.upgraded=u$RANDOM"
	local rolled=$((SECONDS - t0))
	vault_kv "$NS/app" password=after-upgrade
	wait_for "$(rotation_wait)" all_see upgrade after-upgrade
	local converged=$((SECONDS - t0)) missing=0
	for i in $(seq 1 10); do missing=$((missing + $(missing_checks "up-$i"))); done
	# The new providers count from their start: every mount after the roll.
	echo "# upgrade: DaemonSet rolled in ${rolled}s, all 10 pods had the new version ${converged}s after the upgrade began (the longest a pod waited for it: $((converged - rolled))s after the write); mounts served by the new providers $(($(mounts success) + $(mounts error))), failed $(mounts error); warning events (failed mounts or rotations) meanwhile: $(($(warnings up-) - warnings0)); checks that found a file missing: $missing" >&3
	warning_messages up- | sed 's/^/# upgrade: warning: /' >&3
	assert_equal "$missing" 0
	kubectl -n "$NS" delete pod -l watcher=upgrade --wait=false >/dev/null
	vault_kv "$NS/app" password=cluster-pass
}

@test "20. node drain: a Deployment's pod moves to another node and mounts there" {
	class drain
	kubectl apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: drained, namespace: $NS}
spec:
  replicas: 1
  selector: {matchLabels: {app: drained}}
  template:
    metadata: {labels: {app: drained}}
    spec:
      serviceAccountName: app
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: $E2E_IMAGE
          imagePullPolicy: $E2E_IMAGE_PULL_POLICY
          command: ["sh", "-c", "sleep 100000"]
          volumeMounts: [{name: secrets, mountPath: /mnt/secrets, readOnly: true}]
      volumes:
        - name: secrets
          csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: drain}}
EOF
	kubectl -n "$NS" rollout status deployment/drained --timeout=120s >/dev/null
	local before after
	before=$(kubectl -n "$NS" get pods -l app=drained -o 'jsonpath={.items[0].spec.nodeName}')
	# --force: this file's other pods are bare pods, which drain leaves
	# alone otherwise.
	run kubectl drain "$before" --ignore-daemonsets --delete-emptydir-data --force --timeout=120s
	assert_success
	kubectl -n "$NS" rollout status deployment/drained --timeout=120s >/dev/null
	kubectl -n "$NS" wait --for=condition=Ready pod -l app=drained --timeout=120s >/dev/null
	local pod
	pod=$(kubectl -n "$NS" get pods -l app=drained --field-selector=status.phase=Running -o 'jsonpath={.items[0].metadata.name}')
	after=$(kubectl -n "$NS" get pod "$pod" -o 'jsonpath={.spec.nodeName}')
	kubectl uncordon "$before" >/dev/null
	$E2E_VAULT_UNSEAL
	refute [ "$after" = "$before" ]
	run in_pod "$pod" cat /mnt/secrets/password
	assert_output cluster-pass
}
