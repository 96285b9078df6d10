#!/usr/bin/env bats
# Logging in: a Vault role with an audience the driver does not request
# (the provider mints a token itself), and jwt auth trusting the cluster's
# issuer through OIDC discovery or through its public keys.

load helpers

setup_file() {
	e2e_namespace
	vault_kv "$NS/app" password=auth-pass
}

teardown_file() { e2e_namespace_delete; }

@test "9. custom audience not requested by the driver: the TokenRequest fallback logs in" {
	spc custom-aud <<EOF
    roleName: e2e-custom-audience
    audience: custom-audience
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/app, secretKey: password}
EOF
	pod custom-aud custom-aud
	wait_running custom-aud
	run in_pod custom-aud cat /mnt/secrets/password
	assert_output auth-pass
}

jwt_class() {
	spc "$1" <<EOF
    roleName: e2e
    vaultAuthMountPath: $2
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/app, secretKey: password}
EOF
}

@test "11. jwt auth via OIDC discovery, and via validation public keys" {
	jwt_class jwt-discovery jwt
	jwt_class jwt-keys jwt-keys
	pod jwt-discovery jwt-discovery
	pod jwt-keys jwt-keys
	wait_running jwt-discovery
	wait_running jwt-keys
	run in_pod jwt-discovery cat /mnt/secrets/password
	assert_output auth-pass
	run in_pod jwt-keys cat /mnt/secrets/password
	assert_output auth-pass
}
