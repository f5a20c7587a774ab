# One Pharos image with both binaries, static, on distroless: the
# controller Deployment runs /controller as non-root; the speaker DaemonSet
# runs /speaker with NET_RAW (and, for the forwarding path, NET_ADMIN).
# Build with `make image` (IMG=... to name it).

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ ./controller ./speaker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/controller /controller
COPY --from=build /out/speaker /speaker
USER 65532:65532
ENTRYPOINT ["/controller"]
