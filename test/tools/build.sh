#!/usr/bin/env bash
# Builds the real components the integration tests run, from the Go module
# proxy, into a cache outside the repository keyed by version, and links them
# into one bin directory the tests read (VCP_TEST_BIN, default
# ~/.cache/vcp-test/bin). A warm cache makes this a no-op.
#
#   vault           Vault 1.21.1, -tags minimal (kv, pki, jwt auth built in)
#   plugins/kubernetes  Vault's kubernetes auth method, as an external plugin
#   plugins/postgresql-database-plugin  Vault's PostgreSQL database plugin
#   kube-apiserver  Kubernetes 1.34.4
#   etcd            Debian's etcd-server package
#   postgres        Debian's postgresql package (for database secrets)
#   helm            Helm, to render and check the chart
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VCP_CACHE:-$HOME/.cache/vcp-test}
bin=${VCP_TEST_BIN:-$cache/bin}
vault_version=$(cd "$here/vault" && go list -m -f "{{.Version}}" github.com/hashicorp/vault)
kube_version=$(cd "$here/kube" && go list -m -f "{{.Version}}" k8s.io/kubernetes)
vault_version=${vault_version#v}
kube_version=${kube_version#v}
logs=$cache/logs
mkdir -p "$bin/plugins" "$logs"

say() { echo "build.sh: $*" >&2; }

# go_build DIR OUT PKG [flags...]: build PKG in module DIR to OUT, atomically.
go_build() {
	local dir=$1 out=$2 pkg=$3
	shift 3
	mkdir -p "$(dirname "$out")"
	(cd "$dir" && CGO_ENABLED=0 go build -trimpath "$@" -o "$out.tmp" "$pkg") && mv "$out.tmp" "$out"
}

build_vault() {
	local dir=$cache/vault-$vault_version
	if [[ ! -x $dir/vault ]]; then
		say "building vault $vault_version (cold: about 15 minutes on 2 cores)"
		go_build "$here/vault" "$dir/vault" github.com/hashicorp/vault -tags minimal -ldflags "-s -w"
	fi
	if [[ ! -x $dir/plugins/kubernetes ]]; then
		say "building vault's kubernetes auth plugin"
		go_build "$here/vault" "$dir/plugins/kubernetes" \
			github.com/hashicorp/vault-plugin-auth-kubernetes/cmd/vault-plugin-auth-kubernetes -ldflags "-s -w"
	fi
	if [[ ! -x $dir/plugins/postgresql-database-plugin ]]; then
		say "building vault's postgresql database plugin"
		go_build "$here/vault" "$dir/plugins/postgresql-database-plugin" \
			github.com/hashicorp/vault/plugins/database/postgresql/postgresql-database-plugin -ldflags "-s -w"
	fi
	ln -sfn "$dir/vault" "$bin/vault"
	ln -sfn "$dir/plugins/kubernetes" "$bin/plugins/kubernetes"
	ln -sfn "$dir/plugins/postgresql-database-plugin" "$bin/plugins/postgresql-database-plugin"
}

build_kube() {
	local dir=$cache/kube-$kube_version
	if [[ ! -x $dir/kube-apiserver ]]; then
		say "building kube-apiserver $kube_version (cold: about 12 minutes on 2 cores)"
		local pkg=k8s.io/component-base/version
		go_build "$here/kube" "$dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
			-ldflags "-s -w -X $pkg.gitVersion=v$kube_version -X $pkg.gitMajor=${kube_version%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$kube_version")"
	fi
	ln -sfn "$dir/kube-apiserver" "$bin/kube-apiserver"
}

helm_version=v3.19.0

build_helm() {
	local dir=$cache/helm-$helm_version
	if [[ ! -x $dir/helm ]]; then
		say "building helm $helm_version"
		mkdir -p "$dir"
		(cd "$dir" && GOBIN=$dir CGO_ENABLED=0 go install -trimpath "helm.sh/helm/v3/cmd/helm@$helm_version")
	fi
	ln -sfn "$dir/helm" "$bin/helm"
}

ensure_etcd() {
	if ! command -v etcd >/dev/null; then
		apt_install etcd-server
		# The package starts nothing here (no systemd), but stop it where it does.
		systemctl disable --now etcd >/dev/null 2>&1 || true
	fi
	ln -sfn "$(command -v etcd)" "$bin/etcd"
}

# apt_install PACKAGE...: Debian packages, as root.
apt_install() {
	if [[ $(id -u) -ne 0 ]]; then
		say "missing Debian packages $*: apt-get install $*"
		return 1
	fi
	say "installing $* (Debian)"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
	local pg
	pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [[ -z $pg || ! -x $pg/postgres ]]; then
		apt_install postgresql postgresql-client
		# The package may start a cluster on 5432 where systemd runs; the tests start their own.
		systemctl disable --now postgresql >/dev/null 2>&1 || true
		pg=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	fi
	ln -sfn "$pg" "$bin/postgresql"
}

ensure_etcd
ensure_postgres
# The two Go builds run side by side; each logs to its own file.
build_vault >"$logs/vault.log" 2>&1 &
vault_pid=$!
build_kube >"$logs/kube.log" 2>&1 &
kube_pid=$!
build_helm >"$logs/helm.log" 2>&1 &
helm_pid=$!
status=0
wait $vault_pid || { say "vault build failed:"; tail -n 30 "$logs/vault.log" >&2; status=1; }
wait $kube_pid || { say "kube-apiserver build failed:"; tail -n 30 "$logs/kube.log" >&2; status=1; }
wait $helm_pid || { say "helm build failed:"; tail -n 30 "$logs/helm.log" >&2; status=1; }
cat "$logs/vault.log" "$logs/kube.log" "$logs/helm.log" >&2
[[ $status -eq 0 ]] && say "components ready in $bin"
exit $status
