#!/usr/bin/env bats
# KV secrets read into files of a real pod: contents, file modes, two
# classes in one pod, several engines in one class, and a class written for
# hashicorp/vault-csi-provider.

load helpers

setup_file() {
	e2e_namespace
	vault_kv "$NS/app" username=alice password=s3cret-one
	vault kv put -mount=kv "$NS/legacy" api-key=v1-key >/dev/null
}

teardown_file() { e2e_namespace_delete; }

@test "1. inline volume, KV v2: file contents; filePermission honoured, default 0644" {
	spc kv <<EOF
    roleName: e2e
    objects: |
      - objectName: password
        secretPath: secret/data/$NS/app
        secretKey: password
      - objectName: username
        secretPath: secret/data/$NS/app
        secretKey: username
        filePermission: 0600
EOF
	pod kv kv
	wait_running kv
	run in_pod kv cat /mnt/secrets/password
	assert_success
	assert_output s3cret-one
	run in_pod kv cat /mnt/secrets/username
	assert_output alice
	run in_pod kv stat -L -c %a /mnt/secrets/password
	assert_output 644
	run in_pod kv stat -L -c %a /mnt/secrets/username
	assert_output 600
}

@test "4. a pod with two SecretProviderClasses" {
	spc first <<EOF
    roleName: e2e
    objects: |
      - {objectName: username, secretPath: secret/data/$NS/app, secretKey: username}
EOF
	spc second <<EOF
    roleName: e2e
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/app, secretKey: password}
EOF
	pod two first app second
	wait_running two
	run in_pod two cat /mnt/secrets/username /mnt/secrets2/password
	assert_output "alices3cret-one"
	run in_pod two ls /mnt/secrets2
	assert_output password
}

@test "7. several engines in one class: KV v2, KV v1, PKI, database" {
	spc engines <<EOF
    roleName: e2e
    objects: |
      - {objectName: kv2, secretPath: secret/data/$NS/app, secretKey: username}
      - {objectName: kv1, secretPath: kv/$NS/legacy, secretKey: api-key}
      - objectName: cert
        secretPath: pki/issue/e2e
        method: PUT
        secretArgs: {common_name: engines.example.com}
        secretKey: certificate
      - {objectName: db-user, secretPath: database/creds/e2e, secretKey: username}
EOF
	pod engines engines
	wait_running engines
	run in_pod engines cat /mnt/secrets/kv2 /mnt/secrets/kv1
	assert_output "alicev1-key"
	run in_pod engines cat /mnt/secrets/cert
	assert_output --partial "BEGIN CERTIFICATE"
	run in_pod engines cat /mnt/secrets/db-user
	assert_output --regexp '^v-'
}

@test "15. a SecretProviderClass written for hashicorp/vault-csi-provider works unchanged" {
	# Parameters as hashicorp's provider documents them (vaultKubernetesMountPath,
	# vaultSkipTLSVerify, quoted values, KV v2 path with data/).
	kubectl apply -f - >/dev/null <<EOF
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: hashicorp-style, namespace: $NS}
spec:
  provider: vault
  parameters:
    vaultAddress: "$E2E_VAULT_ADDR_IN_CLUSTER"
    roleName: "e2e"
    vaultKubernetesMountPath: "kubernetes"
    vaultSkipTLSVerify: "false"
    objects: |
      - objectName: "db-password"
        secretPath: "secret/data/$NS/app"
        secretKey: "password"
EOF
	pod hashicorp hashicorp-style
	wait_running hashicorp
	run in_pod hashicorp cat /mnt/secrets/db-password
	assert_output s3cret-one
}
