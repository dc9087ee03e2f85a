# volguard image: the server, the CSI plugin and the CLI in one binary.
#   docker build -t volguard:0.2.0 .
# The tag follows kVersion in src/service/volume_service.h; deploy/kubernetes/ points at it.
#
# Two stages on Debian 12: the build stage has the compilers and -dev packages (the build part
# of scripts/install-deps.sh), the runtime stage only the shared libraries the binary links,
# the tools the local driver runs (losetup and mount from `mount`, mkfs.ext4/resize2fs/e2fsck
# from e2fsprogs, mkfs.xfs/xfs_growfs from xfsprogs) and CA certificates (OIDC discovery).

FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libssl-dev nlohmann-json3-dev libcpp-httplib-dev libsqlite3-dev libcurl4-openssl-dev \
      libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev libsimdjson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY proto/ proto/
COPY src/ src/
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVOLGUARD_TESTS=OFF -DVOLGUARD_BENCH=OFF \
 && cmake --build build -j"$(nproc)" --target volguard \
 && strip --strip-unneeded build/volguard \
 && build/volguard --help >/dev/null

FROM debian:12-slim
# Runtime libraries: exactly the packages providing the binary's NEEDED entries on Debian 12
# (libgrpc++1.51 and libgrpc29 bring abseil, c-ares and re2; libcurl4 its TLS/HTTP stack).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libabsl20220623 libprotobuf32 libssl3 libcurl4 \
      libsqlite3-0 libyaml-cpp0.7 libsimdjson14 libcpp-httplib0.11 libspdlog1.10 libfmt9 \
      util-linux mount e2fsprogs xfsprogs ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 volguard \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin volguard
COPY --from=build /src/build/volguard /usr/local/bin/volguard
LABEL org.opencontainers.image.title="volguard" \
      org.opencontainers.image.version="0.2.0" \
      org.opencontainers.image.description="Secure volume server and CSI plugin"
# Non-root by default: the CLI, token minting and the CSI controller need no privilege. The
# server and the CSI node plugin attach loop devices and mount filesystems: their manifests
# run them as root in a privileged container (deploy/kubernetes/30-server-and-node.yaml).
USER 65532:65532
ENTRYPOINT ["volguard"]
CMD ["--help"]
