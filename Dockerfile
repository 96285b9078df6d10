# The provider image: a static binary on distroless static (no shell, no
# package manager, non-root user 65532, CA certificates), pinned by digest.
# Where no Docker engine runs, `make image` packs the same layout into an
# image tarball with test/tools/image instead.
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/vaultcsi/vault-csi-provider/app.Version=${VERSION}" \
      -o /out/vault-csi-provider ./cmd/vault-csi-provider

FROM ${BASE_IMAGE}
COPY --from=build /out/vault-csi-provider /vault-csi-provider
USER 65532:65532
ENTRYPOINT ["/vault-csi-provider"]
