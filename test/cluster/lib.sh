# shellcheck shell=bash disable=SC2154 # dir, bin, who, vault_*, pg_*, repo: set by the caller
# Shared by cluster.sh (the local one-node cluster) and kind.sh: host
# processes (start, stop), a PKI, Vault and PostgreSQL outside the cluster,
# and our chart's installation. Callers set: dir (state), bin (components),
# who (log prefix), vault_host, vault_port, vault_token, pg_host, pg_port,
# pg_clients (a CIDR PostgreSQL also admits, or empty), repo.

say() { echo "$who: $*" >&2; }

die() {
	say "$*"
	exit 1
}

# start NAME CMD...: a host process in its own session, logging to logs/NAME.log.
start() {
	local name=$1
	shift
	if running "$name"; then return 0; fi
	# 3>&-: bats waits for every holder of its fd 3 to exit.
	setsid "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null 3>&- &
	echo $! >"$dir/pids/$name"
}

running() { [[ -f $dir/pids/$1 ]] && kill -0 "$(cat "$dir/pids/$1")" 2>/dev/null; }

# wait_until SECONDS WHAT CMD...: retry CMD every half second.
wait_until() {
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			say "timed out waiting for $what"
			return 1
		fi
		sleep 0.5
	done
}

# stop NAME: end a host process (its whole session) and wait for it.
stop() {
	local name=$1 pid
	[[ -f $dir/pids/$name ]] || return 0
	pid=$(cat "$dir/pids/$name")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
	fi
	rm -f "$dir/pids/$name"
}

# ca CN: a CA in $dir/pki (mode 0700: keys), made once.
ca() {
	mkdir -p "$dir/pki"
	chmod 700 "$dir/pki"
	[[ -f $dir/pki/ca.crt ]] && return 0
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$1" \
		-keyout "$dir/pki/ca.key" -out "$dir/pki/ca.crt" 2>/dev/null
}

# cert NAME CN [O] [SAN]: a key and a certificate signed by the CA in
# $dir/pki; with SAN, for servers and clients, else for clients only.
cert() {
	local name=$1 cn=$2 org=${3:-} san=${4:-} subj
	[[ -f $dir/pki/$name.crt ]] && return 0
	subj="/CN=$cn"
	[[ -n $org ]] && subj="/O=$org$subj"
	openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/pki/$name.key" -subj "$subj" -out "$dir/pki/$name.csr" 2>/dev/null
	local ext=$dir/pki/$name.ext
	echo "basicConstraints=CA:FALSE" >"$ext"
	if [[ -n $san ]]; then
		echo "extendedKeyUsage=serverAuth,clientAuth" >>"$ext"
		echo "subjectAltName=$san" >>"$ext"
	else
		echo "extendedKeyUsage=clientAuth" >>"$ext"
	fi
	openssl x509 -req -in "$dir/pki/$name.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -CAcreateserial \
		-days 30 -extfile "$ext" -out "$dir/pki/$name.crt" 2>/dev/null
}

start_vault() {
	mkdir -p "$dir/vault-plugins"
	local p
	for p in kubernetes postgresql-database-plugin; do
		# Vault refuses symbolic links in its plugin directory.
		[[ -f $dir/vault-plugins/$p ]] || cp "$(readlink -f "$bin/plugins/$p")" "$dir/vault-plugins/$p"
	done
	start vault vault server -dev -dev-root-token-id=root -dev-listen-address="$vault_host:$vault_port" \
		-dev-plugin-dir="$dir/vault-plugins" -dev-no-store-token
	wait_until 30 "vault" env VAULT_ADDR="http://$vault_host:$vault_port" vault status
}

start_postgres() {
	# The real directory: postgres cannot enter root's home, where $bin is.
	local pg
	pg=$(readlink -f "$bin/postgresql")
	if [[ ! -f $dir/pg/PG_VERSION ]]; then
		mkdir -p "$dir/pg"
		chown postgres "$dir/pg"
		echo postgres-e2e >"$dir/pgpass"
		chown postgres "$dir/pgpass"
		runuser -u postgres -- "$pg/initdb" -D "$dir/pg" -U postgres --pwfile="$dir/pgpass" \
			--auth-local=trust --auth-host=scram-sha-256 --no-sync >"$dir/logs/initdb.log" 2>&1
		if [[ -n ${pg_clients:-} ]]; then
			echo "host all all $pg_clients scram-sha-256" >>"$dir/pg/pg_hba.conf"
		fi
	fi
	mkdir -p "$dir/pg-run" && chown postgres "$dir/pg-run"
	start postgres runuser -u postgres -- "$pg/postgres" -D "$dir/pg" -p "$pg_port" \
		-c listen_addresses="$pg_host" -c unix_socket_directories="$dir/pg-run" -c fsync=off
	wait_until 30 "postgres" "$pg/pg_isready" -h "$pg_host" -p "$pg_port"
}

# install_provider_chart HELM_ARGS...: our chart from this repository, then a
# restart so that pods run the image just loaded under the same tag.
install_provider_chart() {
	helm upgrade --install vault-csi-provider "$repo/charts/vault-csi-provider" \
		-n vault-csi --create-namespace "$@" >/dev/null
	kubectl -n vault-csi rollout restart daemonset/vault-csi-provider >/dev/null
	kubectl -n vault-csi rollout status daemonset/vault-csi-provider --timeout=180s >&2
}

# print_env SCRIPT VAULT_URL KUBE_HOST CA_FILE [IN_CLUSTER_VAULT_URL ISSUER]:
# the exports the bats suite and a user need, for a cluster that SCRIPT
# (cluster.sh, kind.sh) started. By default pods reach Vault at VAULT_URL
# too, and the issuer is KUBE_HOST.
print_env() {
	local script=$1 vault_url=$2 kube_host=$3 ca=$4 in_cluster=${5:-$2} issuer=${6:-$3}
	cat <<EOF
export KUBECONFIG=$KUBECONFIG
export VAULT_ADDR=$vault_url
export VAULT_TOKEN=$vault_token
export E2E_VAULT_ADDR_IN_CLUSTER=$in_cluster
export E2E_KUBE_HOST=$kube_host
export E2E_KUBE_CA=$ca
export E2E_ISSUER=$issuer
export E2E_PG_HOST=$pg_host
export E2E_PG_PORT=$pg_port
export E2E_PG_PASSWORD=postgres-e2e
export E2E_ROTATION_POLL=$rotation_poll
export E2E_PROVIDER_RESTART="kubectl -n vault-csi delete pod -l app.kubernetes.io/name=vault-csi-provider"
export E2E_PROVIDER_CHART=$repo/charts/vault-csi-provider
export E2E_VAULT_STOP="$script stop-vault"
export E2E_VAULT_START="$script start-vault"
export PATH=$bin:$bin/postgresql:\$PATH
EOF
}

# driver_chart prints the secrets-store-csi-driver chart's directory, from
# the driver's Go module, downloading the module first: on a new machine it
# is not in the module cache yet, and go list alone prints an empty Dir.
driver_chart() {
	local mod=sigs.k8s.io/secrets-store-csi-driver d
	d=$(cd "$repo/test/tools/csi" && go mod download "$mod" && go list -m -f '{{.Dir}}' "$mod")
	[[ -n $d && -d $d/charts/secrets-store-csi-driver ]] || die "the $mod module has no charts/secrets-store-csi-driver (module directory: ${d:-none})"
	printf '%s/charts/secrets-store-csi-driver\n' "$d"
}
