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
#   qemu-aarch64, qemu-s390x, qemu-ppc64le  Debian's qemu-user (no binfmt)
#
# `build.sh cluster` adds what the one-node cluster (test/cluster) runs:
#   kubelet, kube-controller-manager, kube-scheduler, kubectl  (1.34.4)
#   secrets-store-csi-driver  v1.6.1, with a stand-in for monis.app/mlog
#   csi-registrar   registers the driver with the kubelet (test/tools/csi)
#   csi-livenessprobe  the driver's /healthz sidecar (test/tools/csi)
#   image, pause.tar, busybox.tar  the image packer and two images
#   containerd, runc, CNI plugins, busybox, bats  (Debian)
# `build.sh kind` adds what the kind cluster (test/cluster/kind.sh) needs:
#   kind            v0.33.0 (test/tools/kind)
#   kubeadm, kube-proxy  (1.34.4), and for the node image node/etcd (3.6.5,
#                   test/tools/etcd) and node/coredns (v1.12.1, test/tools/coredns)
#   docker.io, jq, mmdebstrap  (Debian)
# `build.sh image-tool` builds only the image packer (for `make image`).
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
	local dir=$cache/kube-$kube_version pkg=k8s.io/component-base/version cmd
	for cmd in "$@"; do
		if [[ ! -x $dir/$cmd ]]; then
			say "building $cmd $kube_version (cold kube-apiserver: about 16 minutes on 2 cores)"
			go_build "$here/kube" "$dir/$cmd" "k8s.io/kubernetes/cmd/$cmd" \
				-ldflags "-s -w -X $pkg.gitVersion=v$kube_version -X $pkg.gitMajor=${kube_version%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$kube_version")"
		fi
		ln -sfn "$dir/$cmd" "$bin/$cmd"
	done
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

# The system's PATH, without $bin: the links below must point outside it.
system_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

ensure_etcd() {
	if ! PATH=$system_path command -v etcd >/dev/null; then
		apt_install etcd-server
		# The package starts nothing here (no systemd), but stop it where it does.
		systemctl disable --now etcd >/dev/null 2>&1 || true
	fi
	ln -sfn "$(PATH=$system_path command -v etcd)" "$bin/etcd"
}

# ensure_qemu: Debian's qemu-user, to run the image's foreign binaries
# (arm64, s390x, ppc64le) as a process: qemu-aarch64 ./binary. Without its
# recommends, which would register binfmt handlers on the host.
ensure_qemu() {
	local a
	if ! PATH=$system_path command -v qemu-aarch64 >/dev/null; then
		apt_install --no-install-recommends qemu-user
	fi
	for a in aarch64 s390x ppc64le; do
		ln -sfn "$(PATH=$system_path command -v "qemu-$a")" "$bin/qemu-$a"
	done
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
	pg=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	if [[ -z $pg || ! -x $pg/postgres ]]; then
		apt_install postgresql postgresql-client
		# The package may start a cluster on 5432 where systemd runs; the tests start their own.
		systemctl disable --now postgresql >/dev/null 2>&1 || true
		pg=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	fi
	ln -sfn "$pg" "$bin/postgresql"
}

csi_version=$(cd "$here/csi" && go list -m -f "{{.Version}}" sigs.k8s.io/secrets-store-csi-driver)

# build_csi: the secrets-store-csi-driver, and our registrar and liveness
# probe (the proxy refuses node-driver-registrar and livenessprobe), from
# test/tools/csi.
build_csi() {
	local dir=$cache/csi-$csi_version
	if [[ ! -x $dir/secrets-store-csi-driver ]]; then
		say "building secrets-store-csi-driver $csi_version (cold: about 6 minutes on 2 cores)"
		go_build "$here/csi" "$dir/secrets-store-csi-driver" sigs.k8s.io/secrets-store-csi-driver/cmd/secrets-store-csi-driver \
			-ldflags "-s -w -X sigs.k8s.io/secrets-store-csi-driver/pkg/version.BuildVersion=$csi_version"
	fi
	go_build "$here/csi" "$dir/csi-registrar" ./registrar -ldflags "-s -w"
	go_build "$here/csi" "$dir/csi-livenessprobe" ./livenessprobe -ldflags "-s -w"
	ln -sfn "$dir/secrets-store-csi-driver" "$bin/secrets-store-csi-driver"
	ln -sfn "$dir/csi-registrar" "$bin/csi-registrar"
	ln -sfn "$dir/csi-livenessprobe" "$bin/csi-livenessprobe"
}

# build_kind_tools: kind, and the node image's etcd and CoreDNS, each at the
# version its module in test/tools pins.
build_kind_tools() {
	local name mod pkg link version dir
	mkdir -p "$bin/node"
	for name in kind etcd coredns; do
		case $name in
		kind) mod=sigs.k8s.io/kind pkg=sigs.k8s.io/kind link=$bin/kind ;;
		etcd) mod=go.etcd.io/etcd/server/v3 pkg=. link=$bin/node/etcd ;;
		coredns) mod=github.com/coredns/coredns pkg=github.com/coredns/coredns link=$bin/node/coredns ;;
		esac
		version=$(cd "$here/$name" && go list -m -f "{{.Version}}" "$mod")
		dir=$cache/$name-$version
		if [[ ! -x $dir/$name ]]; then
			say "building $name $version"
			go_build "$here/$name" "$dir/$name" "$pkg" -ldflags "-s -w"
		fi
		ln -sfn "$dir/$name" "$link"
	done
}

# build_images: the image packer, a static pause image and Debian's static
# busybox as an image, for pods on the one-node cluster.
build_image_tool() {
	go_build "$here/image" "$cache/images/image" . -ldflags "-s -w"
	ln -sfn "$cache/images/image" "$bin/image"
}

build_images() {
	local dir=$cache/images busybox_version
	busybox_version=$(dpkg-query -W -f '${Version}' busybox-static | tr ':~+' '---')
	build_image_tool
	if [[ ! -f $dir/pause.tar ]]; then
		gcc -static -O2 -o "$dir/pause" "$here/../cluster/pause.c"
		"$dir/image" -tag localhost/pause:3.10 -out "$dir/pause.tar.tmp" -file "$dir/pause=/pause:0755" -entrypoint /pause && mv "$dir/pause.tar.tmp" "$dir/pause.tar"
	fi
	# Every applet linked, as busybox images have them (no shell in the
	# image to make the links), and a printenv, which Debian's busybox lacks
	# and the driver's own suites exec.
	local busybox_tar=$dir/busybox-$busybox_version-applets.tar
	if [[ ! -f $busybox_tar ]]; then
		gcc -static -O2 -o "$dir/printenv" "$here/../cluster/printenv.c"
		local args=(-file /bin/busybox=/bin/busybox:0755 -file "$dir/printenv=/bin/printenv:0755") cmd
		for cmd in $(/bin/busybox --list); do
			[[ $cmd == busybox || $cmd == printenv ]] || args+=(-symlink "/bin/$cmd=busybox")
		done
		"$dir/image" -tag localhost/busybox:e2e -out "$busybox_tar.tmp" -entrypoint /bin/sh "${args[@]}" && mv "$busybox_tar.tmp" "$busybox_tar"
	fi
	ln -sfn "$dir/pause.tar" "$bin/pause.tar"
	ln -sfn "$busybox_tar" "$bin/busybox.tar"
}

# ensure_node_packages: what the one-node cluster runs from Debian.
ensure_node_packages() {
	local missing=() p
	for p in containerd runc containernetworking-plugins busybox-static bats bats-assert bats-support bats-file iptables iproute2 procps openssl shellcheck; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		apt_install "${missing[@]}"
		systemctl disable --now containerd >/dev/null 2>&1 || true
	fi
}

# ensure_kind_packages: the Docker engine (the suite starts its own, see
# test/cluster/docker.sh) and mmdebstrap for the node image's root, without
# recommends: those mount cgroups and start services.
ensure_kind_packages() {
	local missing=() p
	for p in docker.io jq mmdebstrap uidmap; do
		dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if ((${#missing[@]})); then
		apt_install --no-install-recommends "${missing[@]}"
		systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
	fi
}

# Jobs run side by side, each logging to $logs/NAME.log.
declare -A jobs=()
job() {
	local name=$1
	shift
	"$@" >"$logs/$name.log" 2>&1 &
	jobs[$name]=$!
}
wait_jobs() {
	local name status=0
	for name in "${!jobs[@]}"; do
		if ! wait "${jobs[$name]}"; then
			say "$name build failed:"
			tail -n 30 "$logs/$name.log" >&2
			status=1
		fi
		cat "$logs/$name.log" >&2
	done
	return $status
}

set_name=${1:-test}
case $set_name in
test | cluster | kind) ;;
image-tool)
	build_image_tool
	exit
	;;
*)
	say "usage: build.sh [test|cluster|kind|image-tool]"
	exit 2
	;;
esac

ensure_etcd
ensure_postgres
ensure_qemu
job vault build_vault
job kube build_kube kube-apiserver
job helm build_helm
if [[ $set_name == kind ]]; then
	ensure_kind_packages
	job kind-tools build_kind_tools
	job kube-kind build_kube kubeadm kube-proxy
fi
if [[ $set_name == cluster || $set_name == kind ]]; then
	ensure_node_packages
	job kube-node build_kube kubelet kube-controller-manager kube-scheduler kubectl
	job csi build_csi
	job images build_images
fi
wait_jobs || exit 1
say "components ready in $bin"
