#!/usr/bin/env bash
# Installs, from Debian's packages, whatever the build and tests need and this machine lacks.
# Idempotent and quiet when everything is present: `make run` and `make test` call it first.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git openssl ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev nlohmann-json3-dev libcpp-httplib-dev libsqlite3-dev sqlite3 libcurl4-openssl-dev
  libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev libsimdjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  e2fsprogs xfsprogs util-linux mount procps
  python3 curl   # used by the end-to-end test scripts (/usr/bin/python3, curl)
  fio   # encrypted vs plain volume throughput (make bench)
  clang-14 libclang-rt-14-dev   # libFuzzer targets (tests/fuzz: make fuzz, smoke in make test)
  etcd-server etcd-client jq   # real etcd clusters for the etcd client's tests (tests/etcd, tests/cluster)
  # An independent logfmt decoder (go-logfmt, built offline in GOPATH mode) that reads a real
  # server's logs back and checks deploy/fluent-bit's time format (tests/cli/audit_interop_test.sh).
  golang-go golang-github-go-logfmt-logfmt-dev
  prometheus   # promtool: lints a real server's /metrics and checks deploy/prometheus (tests/cli/metrics_test.sh)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js (test helpers from npm: jose, oidc-provider) may come from Debian or be preinstalled.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
