#!/usr/bin/env bats
# What a user sees when something is wrong: the pod's FailedMount events
# say what and how to fix it; once fixed, the pod starts.

load helpers

setup_file() {
	e2e_namespace
	vault_kv "$NS/app" password=errors-pass
	kubectl create namespace "$NS-other" >/dev/null
	kubectl label namespace "$NS-other" vcp-e2e=true >/dev/null
}

teardown_file() {
	kubectl delete namespace "$NS-other" --wait=false >/dev/null 2>&1 || true
	e2e_namespace_delete
}

app_class() {
	spc "$1" "${2:-$NS}" <<EOF
    roleName: e2e
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/app, secretKey: password}
EOF
}

@test "3. SecretProviderClass in another namespace: FailedMount names it" {
	app_class elsewhere "$NS-other"
	pod wrong-ns elsewhere
	run wait_event wrong-ns 'FailedMount: .*elsewhere'
	assert_success
	assert_output --partial "not found"
	run kubectl -n "$NS" get pod wrong-ns -o 'jsonpath={.status.phase}'
	assert_output Pending
}

@test "8. wrong service account: FailedMount with the provider's actionable message" {
	app_class for-app
	pod intruder for-app intruder
	run wait_event intruder 'FailedMount: .*denied login'
	assert_success
	assert_output --partial "vault role \"e2e\" denied login for service account $NS/intruder"
	assert_output --partial "bound_service_account_names"
	# The message carries no token (a JWT starts with eyJ).
	refute_output --partial "eyJ"
}

@test "14. Vault stopped: FailedMount with a clear reason; Vault back: the pod starts" {
	app_class outage
	$E2E_VAULT_STOP
	pod outage outage
	run wait_event outage 'FailedMount: .*(cannot log in to vault|timed out)'
	assert_success
	assert_output --partial "$E2E_VAULT_ADDR_IN_CLUSTER"
	$E2E_VAULT_START
	# A dev server keeps nothing: write the secret again.
	vault_kv "$NS/app" password=errors-pass
	wait_running outage
	run in_pod outage cat /mnt/secrets/password
	assert_output errors-pass
}
