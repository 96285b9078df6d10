# The provider image: a static binary on distroless static (no shell, no
# package manager, non-root user 65532, CA certificates), pinned by digest.
# Where no Docker engine runs, `make image` packs the same layout into an
# image tarball with test/tools/image instead.
#
# Any of linux/amd64, arm64, s390x, ppc64le: the binary is cross-compiled on
# the build machine for TARGETOS/TARGETARCH.
#   docker buildx build --platform linux/amd64,linux/arm64,linux/s390x,linux/ppc64le .
# BuildKit sets the platform arguments itself; the legacy builder needs them:
#   docker build --build-arg BUILDPLATFORM=linux/amd64 --build-arg TARGETOS=linux --build-arg TARGETARCH=arm64 .
ARG BUILDPLATFORM
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

FROM --platform=${BUILDPLATFORM} ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath \
      -ldflags "-s -w -X github.com/vaultcsi/vault-csi-provider/app.Version=${VERSION}" \
      -o /out/vault-csi-provider ./cmd/vault-csi-provider

FROM ${BASE_IMAGE}
COPY --from=build /out/vault-csi-provider /vault-csi-provider
USER 65532:65532
ENTRYPOINT ["/vault-csi-provider"]
