#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest. Used by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "== ruff"; .venv/bin/ruff check ethox_asyncio tests bench examples
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
# Under CI (root), namespace tests must run: a skip of one is a failure. So must the
# compiled io_uring helper's tests and the stack's compiled twins (their builds are
# optional for users, not for CI).
if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ]; then export ETHOX_REQUIRE_NETNS=1; fi
if [ "${CI:-}" = true ]; then
  export ETHOX_REQUIRE_URING_BATCH=1 ETHOX_REQUIRE_SPEEDUPS=1
fi
# pytest exit 5 = no tests collected: that is a failure for us.
run_pytest() {
  local rc=0
  .venv/bin/python -m pytest "$@" || rc=$?
  if [ $rc -eq 5 ]; then echo "test.sh: no tests were collected" >&2; rc=1; fi
  return $rc
}
set +e
run_pytest "$@"
rc=$?
# CI runs the suite a second time against the pure-Python reference of the stack's
# compiled twins (ETHOX_NO_EXTENSIONS=1; the convention of aiohttp, yarl and multidict):
# both must pass. ETHOX_TEST_BOTH=1 does the same outside CI.
if [ "${CI:-}" = true ] || [ "${ETHOX_TEST_BOTH:-}" = 1 ]; then
  echo "== pytest (pure Python: ETHOX_NO_EXTENSIONS=1)"
  ETHOX_NO_EXTENSIONS=1 run_pytest "$@"
  rc2=$?
  [ $rc -ne 0 ] || rc=$rc2
fi
set -e
exit $rc
