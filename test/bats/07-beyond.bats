#!/usr/bin/env bats
# Beyond hashicorp's provider: templates, whole secrets as directories, KV v2
# paths as `vault kv get` takes them, the pod's own Vault token, and the
# troubleshooting command.

load helpers

: "${E2E_PROVIDER_BIN:=$BATS_TEST_DIRNAME/../../bin/vault-csi-provider}"

setup_file() {
	e2e_namespace
	vault_kv "$NS/db" user=app password=tmpl-pass
	vault_kv "$NS/flags" debug=true
}

teardown_file() { e2e_namespace_delete; }

@test "template: one file from two secrets, in the Vault Agent syntax" {
	spc templated <<EOF
    roleName: e2e
    objects: |
      - objectName: app.env
        template: |
          {{- with secret "secret/data/$NS/db" }}
          DB_URL=postgres://{{ .Data.data.user }}:{{ .Data.data.password }}@db/app
          {{- end }}
          {{- with secret "secret/data/$NS/flags" }}
          DEBUG={{ .Data.data.debug | toUpper }}
          {{- end }}
EOF
	pod templated templated
	wait_running templated
	run in_pod templated cat /mnt/secrets/app.env
	assert_output "
DB_URL=postgres://app:tmpl-pass@db/app
DEBUG=TRUE"
}

@test "template error: FailedMount names the object and the line" {
	spc bad-template <<EOF
    roleName: e2e
    objects: |
      - objectName: broken.env
        template: |
          ok line
          {{ with secret "secret/data/$NS/db" }}{{ .Data.data.nope }}{{ end }}
EOF
	pod bad-template bad-template
	run wait_event bad-template 'FailedMount: .*object "broken.env": template: broken.env:2'
	assert_success
}

@test "whole secret: one file per key, jsonPath; KV v2 path written as vault kv get takes it" {
	spc whole <<EOF
    roleName: e2e
    objects: |
      - {objectName: db, secretPath: secret/$NS/db, layout: directory}
      - {objectName: password, secretPath: secret/$NS/db, secretKey: password}
      - {objectName: version, secretPath: secret/$NS/db, jsonPath: .data.metadata.version}
EOF
	pod whole whole
	wait_running whole
	run in_pod whole cat /mnt/secrets/db/user
	assert_output app
	run in_pod whole cat /mnt/secrets/db/password
	assert_output tmpl-pass
	run in_pod whole cat /mnt/secrets/password
	assert_output tmpl-pass
	run in_pod whole cat /mnt/secrets/version
	assert_output 1
}

@test "the pod's own Vault token: it works, a wrapped copy unwraps once, and it is revoked with the pod" {
	spc token <<EOF
    roleName: e2e
    objects: |
      - {objectName: vault-token, vaultToken: true, filePermission: 0400}
      - {objectName: wrapped-token, vaultToken: true, wrapTTL: 5m}
EOF
	pod token token
	wait_running token
	local token wrapped
	token=$(in_pod token cat /mnt/secrets/vault-token)
	wrapped=$(in_pod token cat /mnt/secrets/wrapped-token)
	run env VAULT_TOKEN="$token" vault token lookup -format=json
	assert_success
	assert_output --partial '"e2e"'
	# The wrapped token is the request's own token: with VAULT_TOKEN empty
	# the CLI would send whatever ~/.vault-token holds (any earlier
	# `vault server -dev` or `vault login` on this host leaves one), and
	# Vault refuses that stale token ("permission denied, invalid token").
	run env VAULT_TOKEN="$wrapped" vault unwrap -field=token
	assert_success
	assert_output "$token"

	kubectl -n "$NS" delete pod token --wait=true >/dev/null
	revoked() { ! env VAULT_TOKEN="$token" vault token lookup >/dev/null 2>&1; }
	wait_for 30 revoked
}

@test "vault-csi-provider mount --pod explains why a pod is stuck" {
	# The command runs here and calls Vault itself: at the class's address,
	# or, when Vault is inside the cluster, at the address this host reaches
	# it by (VAULT_ADDR, with VAULT_CACERT and VAULT_TLS_SERVER_NAME), as a
	# user does through kubectl port-forward.
	local via=()
	[[ ${E2E_VAULT_IN_CLUSTER:-} != true ]] || via=(--vault-addr "$VAULT_ADDR")
	spc missing <<EOF
    roleName: e2e
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/not-there, secretKey: password}
EOF
	pod stuck missing
	wait_event stuck 'FailedMount' >/dev/null
	run "$E2E_PROVIDER_BIN" mount --pod "$NS/stuck" --out "$BATS_TEST_TMPDIR/out" "${via[@]}"
	assert_failure
	assert_output --partial "token:  audience [vault], subject system:serviceaccount:$NS:app"
	assert_output --partial 'login at auth/kubernetes/login with role "e2e"'
	assert_output --partial "vault call method=GET path=secret/data/$NS/not-there status=4xx"
	assert_output --partial "nothing in vault at secret/data/$NS/not-there"

	vault_kv "$NS/not-there" password=now-here
	run "$E2E_PROVIDER_BIN" mount --pod "$NS/stuck" --out "$BATS_TEST_TMPDIR/out" "${via[@]}"
	assert_success
	assert_output --partial "password"
	refute_output --partial "now-here"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/out/password")" now-here
}
