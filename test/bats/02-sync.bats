#!/usr/bin/env bats
# secretObjects: the driver mirrors mounted objects into a Kubernetes Secret
# that pods consume as environment variables; it lives as long as its pods.

load helpers

setup_file() {
	e2e_namespace
	vault_kv "$NS/db" username=app-user password=sync-pass-1
}

teardown_file() { e2e_namespace_delete; }

@test "2. sync to a Kubernetes Secret: env var from it, owner references, deleted with its owners" {
	SPC_EXTRA="  secretObjects:
    - secretName: db-synced
      type: Opaque
      data:
        - {objectName: password, key: DB_PASSWORD}
        - {objectName: username, key: DB_USER}" spc synced <<EOF
    roleName: e2e
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/db, secretKey: password}
      - {objectName: username, secretPath: secret/data/$NS/db, secretKey: username}
EOF
	local env="      env:
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: db-synced, key: DB_PASSWORD}}"
	POD_EXTRA=$env pod sync-a synced
	POD_EXTRA=$env pod sync-b synced
	wait_running sync-a
	wait_running sync-b

	# shellcheck disable=SC2016 # expanded in the pod
	run in_pod sync-a sh -c 'echo "$DB_PASSWORD"'
	assert_output sync-pass-1
	run kubectl -n "$NS" get secret db-synced -o 'jsonpath={.data.DB_USER}'
	assert_equal "$(base64 -d <<<"$output")" app-user
	run kubectl -n "$NS" get secret db-synced -o 'jsonpath={.metadata.labels.secrets-store\.csi\.k8s\.io/managed}'
	assert_output true

	# Both pods own the Secret, through their SecretProviderClassPodStatus
	# (which the pod owns); the driver adds the second owner asynchronously.
	owners() { kubectl -n "$NS" get secret db-synced -o 'jsonpath={range .metadata.ownerReferences[*]}{.kind}/{.name}{"\n"}{end}'; }
	owned_by_both() { [[ $(owners) == *sync-a-* && $(owners) == *sync-b-* ]]; }
	wait_for 30 owned_by_both
	run owners
	assert_line "SecretProviderClassPodStatus/sync-a-$NS-synced"
	assert_line "SecretProviderClassPodStatus/sync-b-$NS-synced"

	kubectl -n "$NS" delete pod sync-a --wait=true >/dev/null
	run kubectl -n "$NS" get secret db-synced
	assert_success # still owned by sync-b
	kubectl -n "$NS" delete pod sync-b --wait=true >/dev/null
	wait_for 60 bash -c "! kubectl -n $NS get secret db-synced"
}
