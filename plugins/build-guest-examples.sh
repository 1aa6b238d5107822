#!/usr/bin/env bash
# Builds the plugin examples written in other languages than Rust, against the same
# WIT worlds (wit/: `admission`, `scheduler`, `controller`) the Rust examples use:
#
#   plugins/python/require-labels  -> require_labels_py.wasm   (componentize-py, from PyPI)
#   plugins/js/deny-latest-tag     -> deny_latest_tag_js.wasm  (jco + ComponentizeJS, from npm)
#   plugins/python/prefer-nodes    -> prefer_nodes_py.wasm     (componentize-py; world `scheduler`)
#   plugins/python/configmap-mirror -> configmap_mirror_py.wasm (componentize-py; world `controller`)
#
# Usage: plugins/build-guest-examples.sh [OUT_DIR]
#   OUT_DIR defaults to ${CARGO_TARGET_DIR:-target}/guest-examples (gitignored).
#
# Needs python3 with pip, and node >= 20 with npm; installs the rest itself, pinned:
# componentize-py into OUT_DIR/componentize-py-<version> (`pip install --target`, so it needs no
# venv and is allowed on PEP 668 "externally managed" system Pythons), and jco/ComponentizeJS
# with `npm ci` from plugins/js/deny-latest-tag/package-lock.json into that directory's
# node_modules/ (gitignored). Both steps are skipped when already done. Progress, timings and
# component sizes go to stderr; stdout gets the four component paths, one a line.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${CARGO_TARGET_DIR:-$root/target}/guest-examples}
case $out in /*) ;; *) out=$PWD/$out ;; esac
mkdir -p "$out"

say() { echo "build-guest-examples: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { say "$1 is required ($2)"; exit 1; }; }
need python3 "Debian: apt-get install python3 python3-pip"
need node "Debian: Node.js >= 20 with npm"
need npm "Debian: Node.js >= 20 with npm"
start=$SECONDS

# --- Python: componentize-py -------------------------------------------------------------------
pydeps=$out/componentize-py-$COMPONENTIZE_PY_VERSION
if [ ! -f "$pydeps/.installed" ]; then
  t=$SECONDS
  say "pip install componentize-py==$COMPONENTIZE_PY_VERSION into $pydeps"
  rm -rf "$pydeps"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$pydeps" "componentize-py==$COMPONENTIZE_PY_VERSION" >&2
  touch "$pydeps/.installed"
  say "componentize-py installed in $((SECONDS - t)) s"
fi
componentize_py() {
  PYTHONPATH=$pydeps PYTHONDONTWRITEBYTECODE=1 python3 -c \
    'import sys; from componentize_py import script; sys.argv[0] = "componentize-py"; sys.exit(script())' "$@"
}
t=$SECONDS
py_out=$out/require_labels_py.wasm
(
  cd "$root/plugins/python/require-labels"
  componentize_py -d ../../../wit -w admission componentize app -o "$py_out" >&2
  rm -rf __pycache__ # written by the interpreter componentize-py snapshots
)
say "require_labels_py.wasm: $(wc -c <"$py_out") bytes, built in $((SECONDS - t)) s"
t=$SECONDS
py_sched_out=$out/prefer_nodes_py.wasm
(
  cd "$root/plugins/python/prefer-nodes"
  componentize_py -d ../../../wit -w scheduler componentize app -o "$py_sched_out" >&2
  rm -rf __pycache__
)
say "prefer_nodes_py.wasm: $(wc -c <"$py_sched_out") bytes, built in $((SECONDS - t)) s"
t=$SECONDS
py_ctl_out=$out/configmap_mirror_py.wasm
(
  cd "$root/plugins/python/configmap-mirror"
  componentize_py -d ../../../wit -w controller componentize app -o "$py_ctl_out" >&2
  rm -rf __pycache__
)
say "configmap_mirror_py.wasm: $(wc -c <"$py_ctl_out") bytes, built in $((SECONDS - t)) s"

# --- JavaScript: jco componentize (ComponentizeJS / StarlingMonkey) -----------------------------
t=$SECONDS
js_dir=$root/plugins/js/deny-latest-tag
if [ ! -f "$js_dir/node_modules/.package-lock.json" ] ||
  [ "$js_dir/package-lock.json" -nt "$js_dir/node_modules/.package-lock.json" ]; then
  say "npm ci in $js_dir"
  # `npm ci` refuses a lockfile that lacks the other platforms' optional native packages
  # (rolldown, oxc bindings), which happens when it was resolved against a partial registry
  # mirror; `npm install --no-save` then installs the same pinned tree without rewriting it.
  (cd "$js_dir" && { npm ci --no-audit --no-fund --loglevel=silent >&2 ||
    { say "npm ci refused the lockfile; npm install --no-save instead" &&
      npm install --no-save --no-audit --no-fund --loglevel=error >&2; }; })
  say "jco installed in $((SECONDS - t)) s"
  t=$SECONDS
fi
js_out=$out/deny_latest_tag_js.wasm
(
  cd "$js_dir"
  # --disable all: no WASI imports beyond what the host gives (it gives no network, no files).
  ./node_modules/.bin/jco componentize app.js --wit ../../../wit --world-name admission \
    --disable all -o "$js_out" >&2
)
say "deny_latest_tag_js.wasm: $(wc -c <"$js_out") bytes, built in $((SECONDS - t)) s"

say "done in $((SECONDS - start)) s"
echo "$py_out"
echo "$js_out"
echo "$py_sched_out"
echo "$py_ctl_out"
