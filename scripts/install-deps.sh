#!/usr/bin/env bash
# Installs everything Redirect Console needs to build, run and test on Debian 12.
# Idempotent: does nothing when every package is already there.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ clang pkg-config libbpf-dev bpftool libelf-dev zlib1g-dev
  qt6-base-dev libqt6opengl6-dev qt6-charts-dev libqt6svg6 qt6-qpa-plugins libgl-dev libspdlog-dev nlohmann-json3-dev
  # the control API (gRPC + protobuf, as OpenSnitch), Prometheus metrics, systemd notify
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler prometheus-cpp-dev libsystemd-dev
  # the service's flow history
  libsqlite3-dev
  # sanitizers and fuzzing: clang's runtimes with libFuzzer (only recommended by clang, so not
  # pulled in with --no-install-recommends) and llvm-symbolizer for file:line in clang's reports
  libclang-rt-dev llvm
  # run
  iproute2 kmod policykit-1
  # tests and benchmarks: real clients and servers on loopback
  curl python3 iperf3 haproxy socat wrk bc dnsutils chromium xvfb xauth libxml2-utils desktop-file-utils openssl
  # a third-party API client (Python, compiled from the schema), a real Prometheus server
  # (grpc_tools.protoc imports pkg_resources, which the package does not pull in)
  python3-grpcio python3-grpc-tools python3-pkg-resources prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root" >&2
  exit 3
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
