#!/bin/sh
# Runs golangci-lint (the version pinned in tools/go.mod, configured by
# .golangci.yaml) on every Go module given, each in its own directory: a
# module of the workspace with go.work, examples/gnutls without, as a third
# party builds it. Another golangci-lint running on the machine (a second
# checkout's make test) is waited for (--allow-serial-runners), where by
# default it fails the run ("parallel golangci-lint is running").
# Usage: scripts/lint.sh BIN MODULE... [-- EXAMPLE...]
set -eu
lint=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
root=$(pwd)
status=0
gowork=
for m in "$@"; do
	if [ "$m" = -- ]; then
		gowork=off
		continue
	fi
	echo "golangci-lint: $m"
	(cd "$m" && GOWORK=${gowork:-$root/go.work} "$lint" run --allow-serial-runners --config "$root/.golangci.yaml" ./...) || status=1
done
exit $status
