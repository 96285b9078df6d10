// Packs container images as docker-archive tarballs without a Docker engine,
// for the one-node test cluster (ctr images import). Kept out of the
// provider's module.
module github.com/vaultcsi/vault-csi-provider/test/tools/image

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
