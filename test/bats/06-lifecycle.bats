#!/usr/bin/env bats
# Over time: object versions, rotation, and the provider's own restarts.

load helpers

setup_file() {
	e2e_namespace
	vault_kv "$NS/rot" a=alpha-1 b=beta-1
}

teardown_file() { e2e_namespace_delete; }

rot_class() {
	spc "$1" <<EOF
    roleName: e2e
    objects: |
      - {objectName: a, secretPath: secret/data/$NS/rot, secretKey: a}
      - {objectName: b, secretPath: secret/data/$NS/rot, secretKey: b}
EOF
}

hmac_secret() {
	kubectl -n "${E2E_PROVIDER_NAMESPACE:-vault-csi}" get secret vault-csi-provider-hmac-key -o 'jsonpath={.metadata.uid}'
}

@test "10. object versions stable across pod re-creation; a new HMAC Secret (deleted, then made again by the chart) changes them" {
	rot_class versions
	pod versions versions
	wait_running versions
	local first
	first=$(version versions versions a)
	[[ -n $first ]]

	kubectl -n "$NS" delete pod versions --wait=true >/dev/null
	pod versions versions
	wait_running versions
	assert_equal "$(version versions versions a)" "$first"

	local old_uid
	old_uid=$(hmac_secret)
	kubectl -n "${E2E_PROVIDER_NAMESPACE:-vault-csi}" delete secret vault-csi-provider-hmac-key >/dev/null
	# The chart makes the Secret (the provider may not create Secrets): an
	# upgrade makes a new key.
	provider_set "podAnnotations.hmac=h$RANDOM"
	kubectl -n "$NS" delete pod versions --wait=true >/dev/null
	pod versions versions
	wait_running versions
	refute [ "$(version versions versions a)" = "$first" ]
	refute [ "$(hmac_secret)" = "$old_uid" ]
}

@test "21. the provider runs as a non-root user with no capabilities, its socket in a directory of its own" {
	local pid n=0 status
	for pid in $(pgrep -x vault-csi-provi); do # every node's provider (kind's nodes are containers of this host)
		status=$(cat "/proc/$pid/status")
		grep -qE '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status"
		grep -qE '^CapPrm:\s+0+$' <<<"$status"
		grep -qE '^CapEff:\s+0+$' <<<"$status"
		grep -qE '^NoNewPrivs:\s+1$' <<<"$status"
		assert_equal "$(stat -c '%u %F' "/proc/$pid/root/provider/vault.sock")" "65532 socket"
		n=$((n + 1))
	done
	echo "# non-root: $n providers checked" >&3
	[[ $n -ge 1 ]]
	# The driver finds the socket in the provider's own directory.
	run kubectl -n "${E2E_PROVIDER_NAMESPACE:-vault-csi}" get daemonset vault-csi-provider -o 'jsonpath={.spec.template.spec.volumes[0].hostPath.path}'
	assert_output /var/run/vault-csi-provider
}

@test "12. rotation: a changed secret reaches the file and the pod status; an unchanged one keeps its version" {
	rot_class rotation
	pod rotation rotation
	wait_running rotation
	local a1 b1
	a1=$(version rotation rotation a)
	b1=$(version rotation rotation b)
	vault_kv "$NS/rot" a=alpha-1 b=beta-2

	wait_for "$(rotation_wait)" file_is rotation /mnt/secrets/b beta-2
	b_changed() { [[ $(version rotation rotation b) != "$b1" ]]; }
	wait_for 30 b_changed
	assert_equal "$(version rotation rotation a)" "$a1"
	run in_pod rotation cat /mnt/secrets/a
	assert_output alpha-1
}

@test "13. the provider pod is deleted while workloads run: its replacement serves new mounts" {
	rot_class restart
	pod before restart
	wait_running before
	$E2E_PROVIDER_RESTART >/dev/null
	kubectl -n "${E2E_PROVIDER_NAMESPACE:-vault-csi}" rollout status daemonset/vault-csi-provider --timeout=120s >/dev/null

	pod after restart
	wait_running after
	run in_pod after cat /mnt/secrets/a
	assert_output alpha-1
	# The workload that was running keeps its files and stays ready.
	run in_pod before cat /mnt/secrets/a
	assert_output alpha-1
	run kubectl -n "$NS" get pod before -o 'jsonpath={.status.containerStatuses[0].ready}'
	assert_output true
}
