#!/usr/bin/env bats
# Logging in: a Vault role with an audience the driver does not request
# (the event says what to enable: the audience in the CSIDriver's
# tokenRequests, or the provider's TokenRequest fallback), and jwt auth
# trusting the cluster's issuer through OIDC discovery or its public keys.

load helpers

setup_file() {
	e2e_namespace
	vault_kv "$NS/app" password=auth-pass
}

teardown_file() {
	e2e_namespace_delete
	# Leave the cluster as the other files expect it, even after a failure.
	csidriver_audiences '[{"audience":"vault"}]'
	if helm get values vault-csi-provider -n vault-csi -o json | grep -q '"tokenRequestFallback":true'; then
		provider_set tokenRequestFallback=false
	fi
}

# The one change a user switching from hashicorp's provider may meet: a
# class whose audience the CSIDriver does not request. Off by default, the
# provider mints no token; the event says both ways out, and each works.
@test "9. custom audience not requested by the driver: the event says what to enable; tokenRequests or the TokenRequest fallback each log in" {
	spc custom-aud <<EOF
    roleName: e2e-custom-audience
    audience: custom-audience
    objects: |
      - {objectName: password, secretPath: secret/data/$NS/app, secretKey: password}
EOF
	pod custom-aud custom-aud
	wait_event custom-aud "FailedMount: .*add \{audience: custom-audience\} to the CSIDriver's tokenRequests.*-token-request-fallback"

	# Way 1: the driver requests the audience too.
	csidriver_audiences '[{"audience":"vault"},{"audience":"custom-audience"}]'
	pod custom-aud-requested custom-aud
	wait_running custom-aud-requested
	run in_pod custom-aud-requested cat /mnt/secrets/password
	csidriver_audiences '[{"audience":"vault"}]'
	assert_output auth-pass

	# Way 2: the provider mints the token itself.
	provider_set tokenRequestFallback=true
	pod custom-aud-minted custom-aud
	wait_running custom-aud-minted
	run in_pod custom-aud-minted cat /mnt/secrets/password
	provider_set tokenRequestFallback=false
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
