#!/usr/bin/env bash
# The oldest glibc a binary runs on: the highest GLIBC_x.y symbol version it needs.
#   glibc-floor.sh BINARY [MAX]   prints it; with MAX, fails when it is newer than MAX.
set -euo pipefail
floor=$(objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
echo "$(basename "$1") needs glibc >= $floor ($(stat -c %s "$1") bytes)"
if [ $# -ge 2 ] && [ "$(printf '%s\n%s\n' "$floor" "$2" | sort -V | tail -1)" != "$2" ]; then
  objdump -T "$1" | grep -E "GLIBC_$floor\b" >&2
  echo "it needs glibc $floor, newer than $2: nodes with glibc $2 could not run it" >&2
  exit 1
fi
