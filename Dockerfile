# syntax=docker/dockerfile:1
#
# meshgw container image: the one binary serves both roles, `meshgw control`
# (Deployment) and `meshgw node` (DaemonSet); see deploy/README.md.
#
#   docker build -t meshgw:dev .        # or: podman build -t meshgw:dev .
#
# deploy/dockerfile_test.go parses this file and checks its stages and user,
# because no container engine runs in CI.

# Build stage. The tag pins Go's minor version to the go directive of go.mod
# (1.24), so the image builds with the toolchain the module was tested with
# and never downloads another one. --platform=$BUILDPLATFORM plus GOOS/GOARCH
# cross-compiles natively for `docker buildx build --platform=...` instead of
# running the compiler under emulation.
FROM --platform=$BUILDPLATFORM golang:1.24-bookworm AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary, so the final stage needs no libc.
# -trimpath drops build paths from the binary; -s -w drops symbols.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/meshgw ./cmd/meshgw

# Final stage: distroless static has CA certificates, tzdata and /etc/passwd
# with the nonroot user, and no shell or package manager to attack.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meshgw /meshgw
# Numeric UID:GID, not the name "nonroot": the kubelet can only enforce
# runAsNonRoot on an image whose USER is numeric.
USER 65532:65532
# RTSP (control), RTP/RTCP (a node, and the control's embedded local node),
# gRPC between nodes and the control, the api: listener (probes, metrics).
EXPOSE 8554/tcp 8000/udp 8001/udp 8443/tcp 9997/tcp
ENTRYPOINT ["/meshgw"]
# `run` is the all-in-one gateway on the embedded demo config; the
# manifests replace it with `control ...` or `node ...`.
CMD ["run"]
