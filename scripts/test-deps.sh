#!/usr/bin/env bash
# Installs, on Debian as root, the programs the tests drive when they are
# missing. Elsewhere it only says what is missing: the end-to-end tests
# then skip, or fail under ECAPHOST_E2E=1.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [bpftool]=bpftool
  [bash]=bash
  [zsh]=zsh
  [curl]=curl
  [openssl]=openssl
  [pgrep]=procps
  [nginx]=nginx
  [wrk]=wrk
  [python3]=python3
  [gnutls-cli]=gnutls-bin
  [tstclnt]=libnss3-tools
  [tshark]=tshark
  [clang-16]=clang-16
  [llvm-strip-16]=llvm-16
  [make]=make
  [mariadbd]=mariadb-server
  [mariadb-install-db]=mariadb-server
  [mariadb]=mariadb-client
  [psql]=postgresql-client
)

# header file -> Debian package
declare -A headers=(
  [/usr/include/bpf/bpf_helpers.h]=libbpf-dev
)

# other file -> Debian package
declare -A files=(
  [/usr/lib/go-1.19/bin/go]=golang-1.19-go
)

missing=()
for f in "${!files[@]}"; do
  [ -e "$f" ] || missing+=("${files[$f]}")
done
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for h in "${!headers[@]}"; do
  [ -e "$h" ] || missing+=("${headers[$h]}")
done
# The PostgreSQL server (initdb, pg_ctl, postgres, pgbench), off PATH on Debian.
compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture: answer no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "test-deps: missing ${missing[*]} (not root on Debian: not installing)" >&2
fi
