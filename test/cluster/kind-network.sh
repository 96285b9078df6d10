#!/usr/bin/env bash
# Pod networking for a kind cluster made with disableDefaultCNI (kindnetd,
# kind's own CNI, is refused by the Go module proxy): on every node a bridge
# with host-local addresses from the node's spec.podCIDR, forwarding on in the
# node's network namespace, masquerade for pod traffic leaving the pod
# network, and a route to every other node's pod CIDR through that node's
# address. All of it happens inside the nodes; the host is not touched.
#
#   kind-network.sh POD_SUBNET   (KUBECONFIG and DOCKER_HOST set)
set -euo pipefail

pod_subnet=${1:?usage: $0 POD_SUBNET}
nodes=$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name},{.spec.podCIDR},{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
while IFS=, read -r node cidr _; do
	[[ -n $cidr ]] || { echo "kind-network.sh: node $node has no podCIDR yet" >&2; exit 1; }
	docker exec -i "$node" sh -c 'cat >/etc/cni/net.d/10-vcp.conflist' <<EOF
{"cniVersion": "0.4.0", "name": "vcp", "plugins": [
 {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
 {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
	docker exec "$node" sh -c "sysctl -qw net.ipv4.ip_forward=1
		iptables -t nat -C POSTROUTING -s $pod_subnet ! -d $pod_subnet -j MASQUERADE 2>/dev/null ||
			iptables -t nat -A POSTROUTING -s $pod_subnet ! -d $pod_subnet -j MASQUERADE"
	while IFS=, read -r other other_cidr other_ip; do
		[[ $other == "$node" ]] && continue
		docker exec "$node" ip route replace "$other_cidr" via "$other_ip"
	done <<<"$nodes"
done <<<"$nodes"
