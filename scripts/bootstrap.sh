#!/usr/bin/env bash
# Creates .venv with the package and its test extras, and (as root) the Debian
# packages the integration tests use. Idempotent: a second run does nothing slow.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "bootstrap: need Python >= 3.11" >&2; exit 1; }

# Debian packages for the integration tests (root only: they need namespaces anyway).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${ETHOX_SKIP_APT:-0}" != 1 ]; then
  missing=()
  command -v ip      >/dev/null 2>&1 || missing+=(iproute2)
  command -v ping    >/dev/null 2>&1 || missing+=(iputils-ping)
  command -v arping  >/dev/null 2>&1 || missing+=(iputils-arping)
  command -v tshark  >/dev/null 2>&1 || missing+=(tshark)
  command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
  command -v socat   >/dev/null 2>&1 || missing+=(socat)
  command -v nc      >/dev/null 2>&1 || missing+=(netcat-openbsd)
  command -v curl    >/dev/null 2>&1 || missing+=(curl)
  command -v nft     >/dev/null 2>&1 || missing+=(nftables)
  # The compiled io_uring helper (ethox_asyncio/device/_uring_batch.c) and the stack's
  # compiled twins (ethox_asyncio/stack/wire/_speedups.c) need a C compiler and the
  # Python headers; without them the install still works (pure Python).
  command -v gcc     >/dev/null 2>&1 || missing+=(gcc)
  if ! "$PYTHON" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    missing+=(python3-dev)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

stamp=.venv/.bootstrap-stamp
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall when the dependencies or a C extension changed (the editable install builds
# the extensions in place once: the io_uring helper and the stack's compiled twins).
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
   || [ ethox_asyncio/device/_uring_batch.c -nt "$stamp" ] \
   || [ ethox_asyncio/stack/wire/_speedups.c -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
