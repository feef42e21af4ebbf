#!/usr/bin/env bash
# Mutation check of the library, a measure of the test suite: mutmut changes one thing at a time in the code
# (a sign, a constant, a comparison) and runs the fast lane's tests of that code; a mutant that no test fails
# "survived" and points at behaviour nothing checks. On request only (not in CI): hours on 2 cores.
#
#   bash scripts/mutation.sh [TARGET ...]        TARGET: langevin, ot, trainer (default: all three)
#
# Needs mutmut in the virtual environment (`.venv/bin/pip install mutmut`; not in requirements.txt). Each target
# runs in a copy of the working tree under $MUTATION_DIR (default /tmp/lvm-mutation/TARGET), so the checkout is
# never touched; $JOBS mutants at a time (default 1). Prints killed / total per target and the survivors' diffs
# (also in TARGET/survivors.txt); `cd $MUTATION_DIR/TARGET && .venv/bin/mutmut show NAME` shows one again.
# MUTATION_TESTS="tests/a.py tests/b.py" replaces a target's test files (e.g. to compare two versions of a suite).
# SAMPLE=N runs N of the target's mutants drawn at random (seed $SAMPLE_SEED, default 0) instead of all of them:
# the killed share of a sample estimates the whole's (its 95 % interval is printed), at a fraction of the hours.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${MUTATION_DIR:-/tmp/lvm-mutation}
JOBS=${JOBS:-1}
LANE=${LANE-not slow and not browser and not distributed}  # LANE= (empty) runs the files' slow tests too
"$ROOT/.venv/bin/python" -c "import mutmut" 2>/dev/null || { echo "mutmut is missing: $ROOT/.venv/bin/pip install mutmut" >&2; exit 2; }

declare -A FILES=([langevin]="lvm/langevin.py" [ot]="lvm/ot/*" [trainer]="lvm/trainer.py")
# the fast lane's tests of each target: the files that exercise it
declare -A TESTS=([langevin]="tests/test_langevin.py tests/test_metrics.py"
                  [ot]="tests/test_ot.py tests/test_bench_ot.py"
                  [trainer]="tests/test_trainer.py tests/test_checkpoint.py tests/test_session.py tests/test_run_store.py")

for target in "${@:-langevin ot trainer}"; do
  for t in $target; do
    [[ -n "${FILES[$t]:-}" ]] || { echo "unknown target $t: langevin, ot or trainer" >&2; exit 2; }
    dir="$WORK/$t"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | grep -zv '^\.venv$' | xargs -0 cp --parents -t "$dir")
    ln -s "$ROOT/.venv" "$dir/.venv"
    {
      echo "[mutmut]"
      echo "source_paths=lvm/"
      echo "only_mutate=${FILES[$t]}"
      printf 'also_copy=\n    ui/\n    views/\n    experiments/\n    scripts/\n    benchmarks/\n    pretrained/\n    app.py\n'
      echo "pytest_add_cli_args="
      [[ -z "$LANE" ]] || printf '    -m\n    %s\n' "$LANE"
      printf '    -p\n    no:cacheprovider\n'
      echo "pytest_add_cli_args_test_selection="
      for f in ${MUTATION_TESTS:-${TESTS[$t]}}; do echo "    $f"; done
      echo "process_isolation=forkserver"
    } > "$dir/setup.cfg"
    echo "== $t: ${FILES[$t]} against ${MUTATION_TESTS:-${TESTS[$t]}} (-m \"$LANE\"), $(date -u +%H:%M) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
    names=()
    if [[ -n "${SAMPLE:-}" ]]; then  # make the mutants and the tests' map (a name matching no mutant runs none)
      (cd "$dir" && OMP_NUM_THREADS=1 .venv/bin/mutmut run "none-such" > run.log 2>&1 || true)
      mapfile -t names < <(cd "$dir" && .venv/bin/mutmut results --all true 2>/dev/null | .venv/bin/python -c "
import random, sys
names = sorted(ln.split(': ')[0].strip() for ln in sys.stdin if ': ' in ln)
print('\n'.join(random.Random(${SAMPLE_SEED:-0}).sample(names, min(${SAMPLE}, len(names)))))")
      echo "   a sample of ${#names[@]} mutants (seed ${SAMPLE_SEED:-0})"
    fi
    (cd "$dir" && OMP_NUM_THREADS=1 .venv/bin/mutmut run --max-children "$JOBS" "${names[@]}" >> run.log 2>&1 || true)
    (cd "$dir" && .venv/bin/python - "$t" <<'EOF'
import collections, math, subprocess, sys
lines = subprocess.run([".venv/bin/mutmut", "results", "--all", "true"], capture_output=True, text=True).stdout
status = {ln.split(": ")[0].strip(): ln.split(": ")[1].strip() for ln in lines.splitlines() if ": " in ln}
count = collections.Counter(v for v in status.values() if v != "not checked")
n = sum(count.values())
killed = count["killed"] + count["timeout"] + count["segfault"]
p = killed / max(n, 1)
half = 1.96 * math.sqrt(p * (1 - p) / max(n, 1))
print(f"{sys.argv[1]}: {killed} of {n} mutants run killed ({100 * p:.1f} % ± {100 * half:.1f}, 95 %; "
      f"{len(status)} made); " + ", ".join(f"{k} {v}" for k, v in sorted(count.items())))
names = sorted(k for k, v in status.items() if v == "survived")
with open("survivors.txt", "w") as f:
    for n in names:
        diff = subprocess.run([".venv/bin/mutmut", "show", n], capture_output=True, text=True).stdout
        f.write(f"## {n}\n" + "\n".join(ln for ln in diff.splitlines() if ln[:2] in ("- ", "+ ")) + "\n")
print(open("survivors.txt").read())
EOF
    )
  done
done
