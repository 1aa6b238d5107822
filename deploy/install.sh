#!/bin/sh
# Installs Keelson as a systemd service: `deploy/install.sh server` (the default) or
# `deploy/install.sh agent`. Puts the release binary (KEELSON_BINARY, default
# target/release/keelson; build it with `cargo build --release -p keelson`) in
# /usr/local/bin, the unit in /etc/systemd/system, containerd's config in
# /etc/containerd/config.toml when none exists, then enables and starts the unit (unless
# KEELSON_SKIP_START=1). Needs root.
set -eu
role="${1:-server}"
case "$role" in
  server | agent) ;;
  *) echo "usage: $0 [server|agent]" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
binary="${KEELSON_BINARY:-$here/../target/release/keelson}"
if [ ! -x "$binary" ]; then
  echo "$0: no binary at $binary (cargo build --release -p keelson, or set KEELSON_BINARY)" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "$0: run as root" >&2
  exit 1
fi
install -m 0755 "$binary" /usr/local/bin/keelson
install -m 0644 "$here/keelson-$role.service" "/etc/systemd/system/keelson-$role.service"
install -d -m 0700 /var/lib/keelson
install -d -m 0755 /etc/keelson
if [ ! -e /etc/containerd/config.toml ]; then
  install -D -m 0644 "$here/containerd-config.toml" /etc/containerd/config.toml
fi
if [ "$role" = agent ] && [ ! -e /etc/default/keelson-agent ]; then
  cat >/etc/default/keelson-agent <<'ENV'
# KEELSON_SERVER=https://SERVER:6443
# KEELSON_TOKEN=
# KEELSON_CERTIFICATE_AUTHORITY=/etc/keelson/ca.crt
ENV
  echo "$0: fill in /etc/default/keelson-agent, then: systemctl restart keelson-agent" >&2
fi
systemctl daemon-reload
if [ "${KEELSON_SKIP_START:-0}" != 1 ]; then
  systemctl enable --now "keelson-$role.service"
fi
echo "keelson-$role installed"
