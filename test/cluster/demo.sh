#!/usr/bin/env bash
# make demo: a secret written to Vault appears as a file in a pod on the
# local cluster, through the SecretProviderClass a user would write.
set -euo pipefail

ns=demo
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$ns" vcp-e2e=true --overwrite >/dev/null
kubectl -n "$ns" create serviceaccount app --dry-run=client -o yaml | kubectl apply -f - >/dev/null
vault kv put -mount=secret demo/hello greeting="hello from Vault, $(date -u +%H:%M:%S)" >/dev/null

kubectl apply -f - >/dev/null <<EOF
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: hello, namespace: $ns}
spec:
  provider: vault
  parameters:
    vaultAddress: $E2E_VAULT_ADDR_IN_CLUSTER
    roleName: e2e
    objects: |
      - objectName: greeting
        secretPath: secret/data/demo/hello
        secretKey: greeting
---
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: $ns}
spec:
  serviceAccountName: app
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: localhost/busybox:e2e
      imagePullPolicy: Never
      command: ["sh", "-c", "cat /mnt/secrets/greeting; echo; sleep 100000"]
      volumeMounts: [{name: secrets, mountPath: /mnt/secrets, readOnly: true}]
  volumes:
    - name: secrets
      csi: {driver: secrets-store.csi.k8s.io, readOnly: true, volumeAttributes: {secretProviderClass: hello}}
EOF
kubectl -n "$ns" wait --for=condition=Ready pod/hello --timeout=90s >/dev/null
echo "The pod demo/hello reads /mnt/secrets/greeting:"
echo
echo "    $(kubectl -n "$ns" exec hello -- cat /mnt/secrets/greeting)"
echo
echo "Try: source <(test/cluster/cluster.sh env); vault kv put -mount=secret demo/hello greeting=changed"
echo "     and within about 20 s: kubectl -n demo exec hello -- cat /mnt/secrets/greeting"
echo "Stop the cluster with: make cluster-down"
