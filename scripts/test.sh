#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest. Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "== ruff"; .venv/bin/ruff check ethox_asyncio tests bench examples
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
# Under CI (root), namespace tests must run: a skip of one is a failure. So must the
# compiled io_uring helper's tests (its build is optional for users, not for CI).
if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then export ETHOX_REQUIRE_NETNS=1; fi
if [ "${CI:-}" = true ]; then export ETHOX_REQUIRE_URING_BATCH=1; fi
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest exit 5 = no tests collected: that is a failure for us.
if [ $rc -eq 5 ]; then echo "test.sh: no tests were collected" >&2; exit 1; fi
exit $rc
