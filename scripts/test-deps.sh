#!/usr/bin/env bash
# Installs, on Debian as root, the programs the tests drive when they are
# missing. Elsewhere it only says what is missing: the end-to-end tests
# then skip, or fail under ECAPHOST_E2E=1.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [bpftool]=bpftool
  [bash]=bash
  [curl]=curl
  [openssl]=openssl
  [pgrep]=procps
  [nginx]=nginx
  [python3]=python3
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "test-deps: missing ${missing[*]} (not root on Debian: not installing)" >&2
fi
