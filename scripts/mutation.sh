#!/usr/bin/env bash
# Mutation testing of the sans-IO stack (ethox_asyncio/stack/, wire codecs included)
# and the asyncio transports (ethox_asyncio/_transports.py) with mutmut; the
# configuration is [tool.mutmut] in pyproject.toml, the how-to is docs/design.md
# ("Mutation testing").
#
#   scripts/mutation.sh                             # every configured module
#   scripts/mutation.sh ethox_asyncio/stack/icmp.py # one module (file, directory
#   scripts/mutation.sh ethox_asyncio.stack.wire    #   or dotted name; several allowed)
#   MUTATION_MODULES="ethox_asyncio/stack/route.py" scripts/mutation.sh
#
# Environment:
#   MUTATION_JOBS=1        mutants tested in parallel (one process each; default 1)
#   MUTATION_RESUME=1      keep mutants/ and its cached verdicts from an earlier run
#                          (default: start from a fresh mutants/ for an honest figure)
#   MUTATION_TIME_LIMIT=3h wall-clock bound of the whole run (coreutils `timeout`
#                          syntax); when hit, mutmut is interrupted, the verdicts so
#                          far are kept and reported, unchecked mutants counted apart
#
# Each mutant is also bounded by mutmut itself: wall clock (clean duration of its
# covering tests + 1 s) x 15, CPU time x 30 ([tool.mutmut] timeout_*).
# Prints killed / survived / timeout / suspicious / total and the kill rate, and
# exits 0 whenever the run itself worked (survivors are not a failure); exits
# non-zero when mutmut could not test (e.g. a selected test fails unmutated).
# Duration with one worker: 1-2 min of setup, then ~0.15 s per killed mutant and
# the mutant's whole covering test set per survivor; everything ~1-1.5 h (~8000
# mutants while TCP was landing). Split: `scripts/mutation.sh ethox_asyncio/stack/wire`, then
# `MUTATION_RESUME=1 scripts/mutation.sh` checks the rest and reports the total.
set -euo pipefail
cd "$(dirname "$0")/.."

MUTMUT_VERSION=3.8.1
# Mutants are made of the Python code; the stack's compiled twins (stack/wire/
# _speedups.c) would run instead of the mutated reference functions and hide them.
export ETHOX_NO_EXTENSIONS=1

# Modules to test: arguments, else MUTATION_MODULES, else all configured ones.
modules=("$@")
if [ ${#modules[@]} -eq 0 ] && [ -n "${MUTATION_MODULES:-}" ]; then
  read -r -a modules <<<"$MUTATION_MODULES"
fi
# Turn each into a mutant-name glob: ethox_asyncio/stack/icmp.py -> ethox_asyncio.stack.icmp.*
globs=()
for m in ${modules[@]+"${modules[@]}"}; do
  m=${m%/}; m=${m%.py}; m=${m//\//.}
  case "$m" in ethox_asyncio.stack|ethox_asyncio.stack.*|ethox_asyncio._transports) ;;
    *) echo "mutation: $m is not a mutated module (ethox_asyncio.stack[.…] or ethox_asyncio._transports)" >&2; exit 2 ;;
  esac
  globs+=("$m.*")
done

scripts/bootstrap.sh
if [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("mutmut"))' 2>/dev/null)" != "$MUTMUT_VERSION" ]; then
  echo "mutation: installing mutmut==$MUTMUT_VERSION into .venv"
  .venv/bin/python -m pip install -q "mutmut==$MUTMUT_VERSION"
fi

if [ "${MUTATION_RESUME:-0}" != 1 ]; then
  rm -rf mutants
fi

echo "== mutmut $MUTMUT_VERSION run ${globs[*]:-(all configured modules)} (jobs ${MUTATION_JOBS:-1}, limit ${MUTATION_TIME_LIMIT:-3h})"
start=$(date +%s)
set +e
# SIGINT lets mutmut stop its workers and keep the verdicts; KILL 60 s later if stuck.
timeout --signal=INT --kill-after=60 "${MUTATION_TIME_LIMIT:-3h}" \
  .venv/bin/mutmut run --max-children "${MUTATION_JOBS:-1}" ${globs[@]+"${globs[@]}"}
rc=$?
set -e
seconds=$(( $(date +%s) - start ))
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
  echo "mutation: stopped at the time limit ${MUTATION_TIME_LIMIT:-3h}; reporting what was checked"
elif [ $rc -ne 0 ]; then
  echo "mutation: mutmut failed (exit $rc) before or while testing mutants; see above" >&2
  exit $rc
fi

.venv/bin/python - "$seconds" ${globs[@]+"${globs[@]}"} <<'PY' | tee mutants/mutation-summary.txt
"""Summary over mutants/**/*.meta, restricted to the mutant-name globs given."""
import collections, fnmatch, json, pathlib, sys

from mutmut.stats import status_by_exit_code

seconds, globs = int(sys.argv[1]), sys.argv[2:] or ["*"]
counts: collections.Counter[str] = collections.Counter()
by_status: dict[str, list[str]] = collections.defaultdict(list)
for meta in sorted(pathlib.Path("mutants").rglob("*.py.meta")):
    for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        if any(fnmatch.fnmatch(name, g) for g in globs):
            status = status_by_exit_code[code]
            counts[status] += 1
            by_status[status].append(name)
total = sum(counts.values())
# "segfault" is mutmut's name for a worker killed by a signal (SIGKILL at the CPU
# limit included): the mutant was detected, like a timeout.
detected = counts["killed"] + counts["timeout"] + counts["segfault"] + counts["caught by type check"]
judged = total - counts["not checked"] - counts["skipped"]
checked = total - counts["not checked"]
print(f"== mutation summary ({' '.join(globs)}), {seconds} s")
print(f"killed {counts['killed']} / survived {counts['survived']} / timeout {counts['timeout']}"
      f" / suspicious {counts['suspicious']} / no tests {counts['no tests']}"
      f" / segfault {counts['segfault']} / skipped {counts['skipped']}"
      f" / not checked {counts['not checked']} / total {total}")
if judged:
    print(f"kill rate {100 * detected / judged:.1f} % = (killed + timeout + segfault) / "
          f"(total - skipped - not checked) = {detected}/{judged}; survivors, suspicious and"
          " no-tests mutants are not killed. Equivalent survivors: subtract them from the"
          " denominator by hand (or mark the line `# pragma: no mutate`, then they count as skipped).")
if checked:
    print(f"{seconds / checked:.2f} s per checked mutant (whole run, setup included)")
for status in ("survived", "no tests", "suspicious", "not checked"):
    names = by_status.get(status, [])
    if names:
        print(f"{status} ({len(names)}):" + "".join(f"\n  {n}" for n in names))
print("Diff of one mutant: .venv/bin/mutmut show NAME; all verdicts: .venv/bin/mutmut results --all=true")
PY
