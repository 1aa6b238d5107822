#!/usr/bin/env bash
# The project's test command (README "Run the tests"): installs what the tests need, then runs
# formatting, lints and every test, including the ones that need etcd.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Test dependencies: a real etcd for the etcd-backend suites, etcdctl for snapshot restore.
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
# nft for the service proxy's suites (they run it in network namespaces they make).
if ! command -v nft >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq nftables iproute2 >/dev/null
fi
# The containerd runtime suite: containerd + runc (the suite starts its own containerd),
# ctr to import its image, busybox-static for that image, CNI plugins for pod networks,
# docker-registry (distribution) for the image pull suite.
if ! command -v containerd >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 \
  || ! command -v ctr >/dev/null 2>&1 || [ ! -x /usr/bin/busybox ] || [ ! -x /usr/lib/cni/bridge ] \
  || [ ! -x /usr/sbin/iptables ] || ! command -v docker-registry >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq containerd runc busybox-static containernetworking-plugins iproute2 iptables docker-registry >/dev/null
fi
# kubectl: the stock binaries the suites drive.
for v in 1.33 1.29 1.28 1.27; do
  if [ ! -x "/usr/lib/google-cloud-sdk/bin/kubectl.$v" ]; then
    echo "tools/test.sh: /usr/lib/google-cloud-sdk/bin/kubectl.$v is missing (install google-cloud-cli's kubectl)" >&2
    exit 1
  fi
done
# The official Python client (its dynamic client's discovery cache is tested), in a venv.
py="$(realpath -m "${CARGO_TARGET_DIR:-target}")/test-python"
if [ ! -x "$py/bin/python" ] || ! "$py/bin/python" -c 'import kubernetes' 2>/dev/null; then
  python3 -m venv "$py"
  "$py/bin/pip" install -q 'kubernetes==37.0.2'
fi
export KEELSON_TEST_PYTHON="$py/bin/python"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true

cargo fetch --locked
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The plugins/ workspace (wasm32-wasip2 guests; its .cargo/config.toml picks the target).
(cd plugins && cargo fmt --all --check && cargo clippy --release --locked -- -D warnings)
cargo test --workspace --locked -- --include-ignored
