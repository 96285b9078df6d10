#!/usr/bin/env bash
# Builds, without a registry, the images a kind cluster of this project runs,
# into the suite's own Docker engine (test/cluster/docker.sh; DOCKER_HOST set):
#
#   kind-images.sh node    the kind node image (kind's base image recipe on a
#                          Debian bookworm root made by mmdebstrap, Kubernetes
#                          1.34.4's binaries, and the control plane's images
#                          imported into the node's containerd)
#   kind-images.sh workloads   the images the suite's pods run, printed one
#                          per line: the secrets-store-csi-driver, its CRD
#                          job (kubectl), our registrar and liveness probe,
#                          busybox (also as the driver's e2e busybox), Vault
#                          with its plugins (its CLI also as bao), and the provider
#                          built by `docker build` from our Dockerfile
#
# What goes in comes from test/tools/build.sh kind (Go module proxy) and
# Debian. The node image is built once per recipe: its tag carries a hash of
# its recipe, and the engine's data root (~/.cache/vcp-test/docker) keeps it;
# the workload images are rebuilt each time (seconds; Docker caches layers).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VCP_CACHE:-$HOME/.cache/vcp-test}
bin=${VCP_TEST_BIN:-$cache/bin}
work=$cache/kind
kube_version=$(cd "$here/kube" && go list -m -f "{{.Version}}" k8s.io/kubernetes)
suite=$(basename "$0")

say() { echo "$suite: $*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# rootfs: Debian bookworm with what kind's base image installs (systemd 252:
# kind's own trixie base boots systemd 257, which this cgroup v1 host is not
# known to run).
rootfs() {
	local tar=$work/rootfs-bookworm.tar
	[[ -f $tar ]] && return 0
	say "making the node's Debian root (mmdebstrap, about 2 minutes)"
	mkdir -p "$work"
	mmdebstrap --mode=unshare --format=tar --variant=minbase \
		--include=systemd,systemd-sysv,dbus,containerd,runc,iptables,nftables,conntrack,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,fuse-overlayfs,bash,ca-certificates,procps,socat,e2fsprogs,containernetworking-plugins,jq \
		bookworm "$tar.tmp" http://deb.debian.org/debian >"$work/mmdebstrap.log" 2>&1
	mv "$tar.tmp" "$tar"
}

# control_plane_images DIR: kubeadm's images as one-layer tarballs, tagged
# with the names kubeadm 1.34 asks for (kubeadm config images list).
control_plane_images() {
	local out=$1 c
	for c in kube-apiserver kube-controller-manager kube-scheduler; do
		"$bin/image" -tag "registry.k8s.io/$c:$kube_version" -out "$out/$c.tar" \
			-file "$bin/$c=/usr/local/bin/$c:0755" -entrypoint "/usr/local/bin/$c"
	done
	"$bin/image" -tag registry.k8s.io/etcd:3.6.5-0 -out "$out/etcd.tar" \
		-file "$bin/node/etcd=/usr/local/bin/etcd:0755" -entrypoint /usr/local/bin/etcd
	# As root (with only NET_BIND_SERVICE, kubeadm's Deployment drops the
	# rest): the upstream image's non-root user binds :53 through a file
	# capability, which this packer does not set.
	"$bin/image" -tag registry.k8s.io/coredns/coredns:v1.12.1 -out "$out/coredns.tar" \
		-file "$bin/node/coredns=/coredns:0755" -entrypoint /coredns
	"$bin/image" -tag registry.k8s.io/pause:3.10.1 -out "$out/pause.tar" \
		-file "$cache/images/pause=/pause:0755" -entrypoint /pause
	# kube-proxy programs the node's iptables: its image needs them, and
	# conntrack; the node's Debian root has both.
	mkdir -p "$out/kube-proxy-context"
	cp "$bin/kube-proxy" "$out/kube-proxy-context/"
	printf 'FROM localhost/vcp-kind-rootfs:bookworm\nCOPY kube-proxy /usr/local/bin/kube-proxy\n' >"$out/kube-proxy-context/Dockerfile"
	DOCKER_BUILDKIT=0 docker build -q -t "registry.k8s.io/kube-proxy:$kube_version" "$out/kube-proxy-context" >/dev/null
	rm -rf "$out/kube-proxy-context"
	docker save "registry.k8s.io/kube-proxy:$kube_version" -o "$out/kube-proxy.tar"
	docker image rm "registry.k8s.io/kube-proxy:$kube_version" >/dev/null
}

node() {
	# The tag carries a hash of the recipe (this function and the two it
	# calls), so a changed recipe builds a new image; older ones are removed.
	local recipe node_image
	recipe=$(declare -f node rootfs control_plane_images | sha256sum | cut -c1-10)
	node_image=localhost/vcp-kind-node:$kube_version-$recipe
	if have_image "$node_image"; then
		echo "$node_image"
		return 0
	fi
	rootfs
	local ctx=$work/node-context files
	files=$(cd "$here/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files
	rm -rf "$ctx" && mkdir -p "$ctx/images"
	cp -r "$files" "$ctx/files"
	chmod -R u+w "$ctx/files"
	cp "$bin/kubeadm" "$bin/kubelet" "$bin/kubectl" "$ctx/"
	have_image localhost/vcp-kind-rootfs:bookworm ||
		docker import "$work/rootfs-bookworm.tar" localhost/vcp-kind-rootfs:bookworm >/dev/null
	control_plane_images "$ctx/images"
	cat >"$ctx/config.toml" <<'EOF'
# kind's containerd configuration for Debian's containerd 1.6: no
# fuse-overlayfs proxy; restrict_oom_score_adj because this machine's
# capability bounding set lacks CAP_SYS_RESOURCE.
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.1"
  tolerate_missing_hugepages_controller = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    discard_unpacked_layers = true
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      base_runtime_spec = "/etc/containerd/cri-base.json"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
EOF
	# The kubelet sets vm.overcommit_memory, kernel.panic and
	# kernel.panic_on_oops, which are the host's: it finds them already set
	# in files bound over them in the node's own mount namespace.
	cat >"$ctx/vcp-sysctls.sh" <<'EOF'
#!/bin/sh
set -eu
mkdir -p /run/vcp-sysctls
for kv in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
	k=${kv%=*} f=/run/vcp-sysctls/$(echo "${kv%=*}" | tr / .)
	echo "${kv#*=}" >"$f"
	mountpoint -q "/proc/sys/$k" || mount --bind "$f" "/proc/sys/$k"
done
EOF
	cat >"$ctx/Dockerfile" <<EOF
FROM localhost/vcp-kind-rootfs:bookworm
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
COPY config.toml /etc/containerd/config.toml
COPY vcp-sysctls.sh /kind/bin/vcp-sysctls.sh
COPY kubeadm kubelet kubectl /usr/bin/
COPY images/ /kind/images/
RUN chmod 0755 /kind /kind/bin /kind/bin/* /usr/local/bin/* \\
 && sed -i 's|/usr/local/bin/containerd|/usr/bin/containerd|' /etc/systemd/system/containerd.service \\
 && printf '[Service]\nExecStartPre=/kind/bin/vcp-sysctls.sh\n' >/etc/systemd/system/kubelet.service.d/20-vcp-sysctls.conf \\
 && rm -f /usr/lib/sysctl.d/*.conf /etc/sysctl.d/99-sysctl.conf \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
    /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
    /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && echo ReadKMsg=no >>/etc/systemd/journald.conf \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests /opt/cni \\
 && ln -s /usr/lib/cni /opt/cni/bin \\
 && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
    | jq 'del(.process.rlimits)' >/etc/containerd/cri-base.json \\
 && echo $kube_version >/kind/version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
EOF
	say "building the kind node image $node_image"
	DOCKER_BUILDKIT=0 docker build -q -t localhost/vcp-kind-node-build:latest "$ctx" >/dev/null
	# Import the control plane's images into the node's containerd, as
	# `kind build node-image` would if it could run offline.
	local c
	c=$(docker run -d --privileged --entrypoint sleep localhost/vcp-kind-node-build:latest infinity)
	docker exec "$c" sh -c 'containerd >/var/log/containerd-build.log 2>&1 & for i in $(seq 100); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.2; done
		for t in /kind/images/*.tar; do ctr -n k8s.io images import --no-unpack --all-platforms "$t" >/dev/null || exit 1; done
		ctr -n k8s.io images ls -q; pkill containerd; rm -rf /kind/images /var/log/containerd-build.log' >&2
	docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' "$c" "$node_image" >/dev/null
	docker rm -f "$c" >/dev/null
	docker image rm localhost/vcp-kind-node-build:latest >/dev/null
	docker image ls --format '{{.Repository}}:{{.Tag}}' localhost/vcp-kind-node | grep -vxF "$node_image" | xargs -r docker image rm >/dev/null || true
	rm -rf "$ctx"
	echo "$node_image"
}

# docker_build ARGS...: the legacy builder (BuildKit is not in Debian's
# docker.io), quiet unless the build fails.
docker_build() {
	local out
	out=$(DOCKER_BUILDKIT=0 docker build -q "$@" 2>&1) || {
		echo "$out" >&2
		return 1
	}
}

# pack TAG ARGS...: a one-layer image by the packer, loaded into the engine.
pack() {
	local tag=$1 tar
	shift
	tar=$(mktemp "$work/pack-XXXXXX.tar")
	"$bin/image" -tag "$tag" -out "$tar" "$@"
	docker load -q -i "$tar" >/dev/null
	rm -f "$tar"
	echo "$tag"
}

# go_image: a Go toolchain image from the Go installed here, for the
# Dockerfile's GO_IMAGE (golang:1.26 cannot be pulled): the Debian root plus
# /usr/local/go, with this machine's module proxy settings and CA
# certificates (the way out may be through a proxy with its own CA).
go_image() {
	local v tag ctx
	v=$(go env GOVERSION)
	tag=localhost/vcp-go:${v#go}
	if ! have_image "$tag"; then
		ctx=$(mktemp -d "$work/go-XXXXXX")
		cat >"$ctx/Dockerfile" <<EOF
FROM localhost/vcp-kind-rootfs:bookworm
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOPROXY=$(go env GOPROXY) GOSUMDB=$(go env GOSUMDB) GOFLAGS=-buildvcs=false
EOF
		cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
		tar -C "$ctx" -c Dockerfile ca-certificates.crt -C "$(go env GOROOT)/.." go | docker_build -t "$tag" -
		rm -rf "$ctx"
	fi
	echo "$tag"
}

workloads() {
	rootfs
	have_image localhost/vcp-kind-rootfs:bookworm ||
		docker import "$work/rootfs-bookworm.tar" localhost/vcp-kind-rootfs:bookworm >/dev/null
	local csi_version csi_dir vault_version ctx
	csi_version=$(cd "$here/csi" && go list -m -f "{{.Version}}" sigs.k8s.io/secrets-store-csi-driver)
	csi_dir=$(cd "$here/csi" && go list -m -f "{{.Dir}}" sigs.k8s.io/secrets-store-csi-driver)
	vault_version=$(cd "$here/vault" && go list -m -f "{{.Version}}" github.com/hashicorp/vault)

	# The driver mounts tmpfs through mount(8), as its upstream image on
	# Debian does.
	ctx=$(mktemp -d "$work/driver-XXXXXX")
	cp "$(readlink -f "$bin/secrets-store-csi-driver")" "$ctx/secrets-store-csi"
	printf 'FROM localhost/vcp-kind-rootfs:bookworm\nCOPY secrets-store-csi /secrets-store-csi\nENTRYPOINT ["/secrets-store-csi"]\n' >"$ctx/Dockerfile"
	docker_build -t "localhost/secrets-store-csi-driver:$csi_version" "$ctx"
	rm -rf "$ctx"
	echo "localhost/secrets-store-csi-driver:$csi_version"

	# The chart's CRD hook runs `kubectl apply -f crds/` in /.
	local crds=() f
	for f in "$csi_dir"/charts/secrets-store-csi-driver/crds/*.yaml; do crds+=(-file "$f=/crds/$(basename "$f")"); done
	pack "localhost/secrets-store-csi-driver-crds:$csi_version" -file "$bin/kubectl=/kubectl:0755" "${crds[@]}" -entrypoint /kubectl
	pack localhost/csi-node-driver-registrar:vcp -file "$(readlink -f "$bin/csi-registrar")=/csi-node-driver-registrar:0755" \
		-entrypoint /csi-node-driver-registrar
	pack localhost/csi-livenessprobe:vcp -file "$(readlink -f "$bin/csi-livenessprobe")=/livenessprobe:0755" -entrypoint /livenessprobe
	docker load -q -i "$bin/busybox.tar" >/dev/null
	echo localhost/busybox:e2e
	# The same busybox under the name the driver's own suites' pods use.
	docker tag localhost/busybox:e2e registry.k8s.io/e2e-test-images/busybox:1.29-4
	echo registry.k8s.io/e2e-test-images/busybox:1.29-4
	# Vault refuses symbolic links in its plugin directory: the files
	# themselves go in. bao is the Vault CLI under OpenBao's name, for the
	# stand-in OpenBao of the driver's openbao.bats (OpenBao's server cannot
	# be built from the module proxy).
	pack "localhost/vault:${vault_version#v}" -file "$(readlink -f "$bin/vault")=/bin/vault:0755" -symlink /bin/bao=vault \
		-file "$(readlink -f "$bin/plugins/kubernetes")=/vault/plugins/kubernetes:0755" \
		-file "$(readlink -f "$bin/plugins/postgresql-database-plugin")=/vault/plugins/postgresql-database-plugin:0755" \
		-file /etc/ssl/certs/ca-certificates.crt=/etc/ssl/certs/ca-certificates.crt -entrypoint /bin/vault

	# Our image, from our Dockerfile, on local equivalents of its bases.
	local go base
	go=$(go_image)
	base=$(pack localhost/vcp-static:nonroot -nonroot-passwd \
		-file /etc/ssl/certs/ca-certificates.crt=/etc/ssl/certs/ca-certificates.crt)
	local arch
	arch=$(go env GOARCH)
	local args=(--network host --build-arg GO_IMAGE="$go" --build-arg BASE_IMAGE="$base"
		--build-arg BUILDPLATFORM="linux/$arch" --build-arg TARGETOS=linux
		--build-arg VERSION="$(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo dev)")
	# The build stage tagged too, so that removing untagged images keeps the
	# layer cache (go mod download) for the next build.
	docker_build "${args[@]}" --build-arg TARGETARCH="$arch" --target build -t localhost/vault-csi-provider-build:cache "$repo"
	docker_build "${args[@]}" --build-arg TARGETARCH="$arch" -t localhost/vault-csi-provider:e2e "$repo"
	dockerfile_cross_compiles "${args[@]}"
	docker image prune -f >/dev/null
	say "$(docker image inspect localhost/vault-csi-provider:e2e \
		-f 'localhost/vault-csi-provider:e2e: {{.Size}} bytes, {{len .RootFS.Layers}} layers, user {{.Config.User}}')"
	echo localhost/vault-csi-provider:e2e
}

# dockerfile_cross_compiles BUILD-ARGS...: the Dockerfile's build stage for
# TARGETARCH=arm64, on this machine, makes an arm64 binary (ELF machine
# 0xb7, AArch64): the way `docker buildx --platform linux/arm64` builds it.
dockerfile_cross_compiles() {
	local out=$work/provider-arm64 cid machine
	docker_build "$@" --build-arg TARGETARCH=arm64 --target build -t localhost/vault-csi-provider-build:arm64 "$repo"
	cid=$(docker create localhost/vault-csi-provider-build:arm64 /out/vault-csi-provider)
	docker cp "$cid:/out/vault-csi-provider" "$out" >/dev/null
	docker rm "$cid" >/dev/null
	machine=$(od -An -tx1 -j18 -N2 "$out" | tr -d ' ')
	rm -f "$out"
	[[ $machine == b700 ]] || {
		say "the Dockerfile's build for TARGETARCH=arm64 made no arm64 binary (ELF machine $machine)"
		return 1
	}
	say "the Dockerfile's build stage for TARGETARCH=arm64 makes an arm64 binary"
}

case ${1:-} in
node) node ;;
workloads) workloads ;;
*)
	echo "usage: $0 node|workloads" >&2
	exit 2
	;;
esac
