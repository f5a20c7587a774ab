# Pharos's image: the controller, the speaker and the kubectl plugin as
# static binaries on nothing (FROM scratch: no shell, no libc, no CA
# certificates, which nothing needs: the binaries talk to the apiserver with
# the CA of the pod's ServiceAccount, and to speakers and BGP routers
# without TLS). The controller Deployment runs /controller as 65532; the
# speaker DaemonSet runs /speaker as root with only NET_RAW (and, for the
# forwarding path, NET_ADMIN).
#
# `make image` builds it with Docker (IMG=... to name it); the release
# workflow builds it for linux/amd64 and linux/arm64 with docker buildx.
# Without Docker, `make image-archive` builds the same image with buildah
# (hack/image); test/image checks that this file and that build describe the
# same image (hack/image/ociimage.Pharos): keep them in step.

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags='-s -w' -o /out/ ./controller ./speaker ./kubectl-pharos

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
COPY --from=build /out/controller /controller
COPY --from=build /out/speaker /speaker
COPY --from=build /out/kubectl-pharos /kubectl-pharos
USER 65532:65532
ENTRYPOINT ["/controller"]
LABEL org.opencontainers.image.title="pharos" \
      org.opencontainers.image.description="Pharos, a load balancer for bare-metal Kubernetes: controller, speaker and kubectl-pharos" \
      org.opencontainers.image.source="https://github.com/pharos-lb/pharos" \
      org.opencontainers.image.url="https://github.com/pharos-lb/pharos" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
