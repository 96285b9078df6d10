#!/usr/bin/env bash
# A Docker engine of the kind suite's own, isolated from the host:
#
#   docker.sh up      start containerd and dockerd (Debian's docker.io) with
#                     their own roots and sockets
#   docker.sh down    stop both; the data root (images) stays as a cache
#   docker.sh env     the DOCKER_HOST export
#
# dockerd runs with --iptables=false --ip-masq=false --ip-forward=false
# --bridge=none, so it changes neither the host's firewall nor forwarding; its
# containerd is its own (never the system's, never the local cluster's). Its
# default runtime is a runc wrapper that drops CAP_SYS_RESOURCE, which this
# machine's capability bounding set lacks: Docker 20.10 asks for every
# capability for --privileged (kind's nodes) and runc would refuse to start.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VCP_CACHE:-$HOME/.cache/vcp-test}
run=${VCP_DOCKER_RUN:-/run/vcp-kind}
data=${VCP_DOCKER_DATA:-$cache/docker}
dir=$run
export who=docker # read by lib.sh
# shellcheck source-path=SCRIPTDIR
source "$here/lib.sh"

export DOCKER_HOST=unix://$run/docker.sock

# runc_wrapper: the runtime dockerd uses, which drops CAP_SYS_RESOURCE from
# a container's spec (runc create/run --bundle) and from a process's spec
# (runc exec --process), then runs Debian's runc.
runc_wrapper() {
	cat >"$run/runc" <<'EOF'
#!/bin/sh
drop() { jq '(.. | objects | select(has("bounding")) | .[]) |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)' "$1" >"$1.vcp" && mv "$1.vcp" "$1"; }
prev=
for a in "$@"; do
	case $prev in
	--bundle | -b) [ -f "$a/config.json" ] && drop "$a/config.json" ;;
	--process | -p) [ -f "$a" ] && drop "$a" ;;
	esac
	prev=$a
done
exec /usr/sbin/runc "$@"
EOF
	chmod 0755 "$run/runc"
}

up() {
	{ command -v dockerd && command -v jq; } >/dev/null || die "needs Debian's docker.io and jq: test/tools/build.sh kind installs them"
	mkdir -p "$run/logs" "$run/pids" "$data"
	# systemd as a kind node's PID 1 raises the host's fs.file-max (a kernel
	# global): down puts it back.
	[[ -f $run/host-state ]] || echo "fs/file-max $(cat /proc/sys/fs/file-max)" >"$run/host-state"
	runc_wrapper
	# Docker's containerd needs no CRI.
	echo 'disabled_plugins = ["io.containerd.grpc.v1.cri"]' >"$run/containerd.toml"
	start containerd containerd --root "$data/containerd" --state "$run/containerd" \
		--address "$run/containerd.sock" --config "$run/containerd.toml"
	wait_until 30 "containerd" test -S "$run/containerd.sock"
	start dockerd dockerd --data-root "$data/engine" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
		-H "$DOCKER_HOST" --containerd "$run/containerd.sock" \
		--iptables=false --ip-masq=false --ip-forward=false --bridge=none --ip6tables=false \
		--add-runtime vcp-runc="$run/runc" --default-runtime vcp-runc --storage-driver overlay2
	wait_until 60 "dockerd" docker version
	say "up (DOCKER_HOST=$DOCKER_HOST, data in $data)"
}

down() {
	if running dockerd; then
		# The networks it made (kind's) are host bridges: remove them first.
		docker network ls --filter type=custom -q | xargs -r docker network rm >/dev/null 2>&1 || true
	fi
	stop dockerd
	stop containerd
	# Mounts the engine leaves only when killed: its overlays and netns files.
	grep -F -e " $run/" -e " $data/engine/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	if [[ -f $run/host-state ]]; then
		local key value
		while read -r key value; do echo "$value" >"/proc/sys/$key"; done <"$run/host-state"
	fi
	rm -rf "$run"
	say "down"
}

case ${1:-} in
up) up ;;
down) down ;;
env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
*)
	echo "usage: $0 up|down|env" >&2
	exit 2
	;;
esac
