#!/usr/bin/env bats
# Dynamic secrets: PKI certificates issued with arguments, and database
# credentials whose two halves come from the same lease.

load helpers

setup_file() { e2e_namespace; }
teardown_file() { e2e_namespace_delete; }

@test "5. PKI issue via PUT + secretArgs: two certificates with different common names, both valid" {
	spc certs <<EOF
    roleName: e2e
    objects: |
      - objectName: api.pem
        secretPath: pki/issue/e2e
        method: PUT
        secretArgs: {common_name: api.example.com, ttl: 10m}
        secretKey: certificate
      - objectName: web.pem
        secretPath: pki/issue/e2e
        method: PUT
        secretArgs: {common_name: web.example.com, ttl: 10m}
        secretKey: certificate
EOF
	pod certs certs
	wait_running certs
	local tmp=$BATS_TEST_TMPDIR
	in_pod certs cat /mnt/secrets/api.pem >"$tmp/api.pem"
	in_pod certs cat /mnt/secrets/web.pem >"$tmp/web.pem"
	vault read -field=certificate pki/cert/ca >"$tmp/ca.pem"

	run openssl x509 -in "$tmp/api.pem" -noout -subject
	assert_output --partial "CN = api.example.com"
	run openssl x509 -in "$tmp/web.pem" -noout -subject
	assert_output --partial "CN = web.example.com"
	run openssl verify -CAfile "$tmp/ca.pem" "$tmp/api.pem" "$tmp/web.pem"
	assert_success
	refute [ "$(openssl x509 -in "$tmp/api.pem" -noout -serial)" = "$(openssl x509 -in "$tmp/web.pem" -noout -serial)" ]
}

@test "6. database dynamic credentials: username and password from the same lease log into Postgres" {
	spc db <<EOF
    roleName: e2e
    objects: |
      - {objectName: db-username, secretPath: database/creds/e2e, secretKey: username}
      - {objectName: db-password, secretPath: database/creds/e2e, secretKey: password}
EOF
	pod db db
	wait_running db
	local user pass
	user=$(in_pod db cat /mnt/secrets/db-username)
	pass=$(in_pod db cat /mnt/secrets/db-password)
	run env PGPASSWORD="$pass" PGCONNECT_TIMEOUT=5 psql -h "$E2E_PG_HOST" -p "$E2E_PG_PORT" -U "$user" -d postgres -tAc 'select current_user'
	assert_success
	assert_output "$user"
}
