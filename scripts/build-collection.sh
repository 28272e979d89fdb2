#!/usr/bin/env bash
# Build the Ansible collection pmemstack.pmem: one command, prints the tarball's path
# (the last line of stdout).
#
#   scripts/build-collection.sh [--bin BINARY] [--out DIR]
#
# - The modules are the static binary `cargo dist` builds
#   (target/x86_64-unknown-linux-gnu/release/pmem_stack); it is built when missing or
#   older than the sources. `--bin` takes another binary instead (the tests pass the one
#   they test) and builds nothing.
# - The collection is staged in DIR/ansible_collections/pmemstack/pmem/ (default DIR:
#   target/collection), the path ansible-test needs: collection/ (galaxy.yml, meta/,
#   README.md, the sidecar docs plugins/modules/*.yml, tests/sanity/), the binary as
#   plugins/modules/pmem_stack and plugins/modules/pmem_stack_info, and the project's
#   CHANGELOG.md.
# - ansible-galaxy (from the venv scripts/install-deps.sh makes) builds
#   DIR/pmemstack-pmem-VERSION.tar.gz; galaxy.yml has no `manifest:` key, so every staged
#   file goes in, extension-less modules included, and this script checks that they did.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${PMEM_STACK_ANSIBLE_VENV:-$REPO/target/ansible-venv}
BIN=""
OUT=$REPO/target/collection
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--bin BINARY] [--out DIR]" >&2; exit 2 ;;
  esac
done

if [ -z "$BIN" ]; then
  BIN=$REPO/target/x86_64-unknown-linux-gnu/release/pmem_stack
  if [ ! -x "$BIN" ] || [ -n "$(find src Cargo.toml Cargo.lock .cargo -newer "$BIN" -print -quit)" ]; then
    echo "build-collection: building the binary (cargo dist)" >&2
    cargo dist --locked --bin pmem_stack >&2
  fi
fi
[ -x "$BIN" ] || { echo "build-collection: no binary at $BIN" >&2; exit 1; }
[ -x "$VENV/bin/ansible-galaxy" ] || {
  echo "build-collection: no ansible-galaxy in $VENV (run scripts/install-deps.sh)" >&2; exit 1; }

VERSION=$(sed -n 's/^version: *//p' collection/galaxy.yml)
CARGO_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
[ "$VERSION" = "$CARGO_VERSION" ] || {
  echo "build-collection: galaxy.yml version $VERSION is not Cargo.toml's $CARGO_VERSION" >&2; exit 1; }

STAGE=$OUT/ansible_collections/pmemstack/pmem
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -R collection/. "$STAGE/"
cp CHANGELOG.md "$STAGE/CHANGELOG.md"
install -m 0755 "$BIN" "$STAGE/plugins/modules/pmem_stack"
install -m 0755 "$BIN" "$STAGE/plugins/modules/pmem_stack_info"

TARBALL=$OUT/pmemstack-pmem-$VERSION.tar.gz
"$VENV/bin/ansible-galaxy" collection build --force --output-path "$OUT" "$STAGE" >&2
LISTING=$(tar -tzf "$TARBALL")
for f in plugins/modules/pmem_stack plugins/modules/pmem_stack_info \
         plugins/modules/pmem_stack.yml plugins/modules/pmem_stack_info.yml \
         meta/runtime.yml README.md CHANGELOG.md MANIFEST.json FILES.json; do
  grep -qx "$f" <<<"$LISTING" || {
    echo "build-collection: $f is missing from $TARBALL" >&2; exit 1; }
done
echo "$TARBALL"
