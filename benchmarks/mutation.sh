#!/usr/bin/env bash
# Mutation testing of nnbackend's core modules (issue 23), with mutmut 2.x.
# Not part of CI: slow. Each group of modules is mutated in its own scratch
# copy of the tracked tree (the working tree is never touched) and each
# mutant runs only the tests that cover that group, on the NumPy backend,
# stopping at the first failure.
#
#   pip install -e '.[mutation]'                 # mutmut>=2.5,<3
#   benchmarks/mutation.sh                       # every group, one after another
#   benchmarks/mutation.sh training engine       # some groups
#   JOBS=2 benchmarks/mutation.sh                # groups two at a time
#   OUT=benchmarks/results/mutation-DATE benchmarks/mutation.sh ...
#
# Writes, per group, $OUT/<group>.txt (mutmut's results: survivors' ids) and
# $OUT/<group>-survivors.diff (each survivor's diff), and $OUT/summary.txt
# (killed / survived / timeout / suspicious per group). Survivors are
# judged by hand in benchmarks/mutation_survivors.md.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/nnbackend-mutation}
OUT=${OUT:-$ROOT/benchmarks/results/mutation-$(date +%Y-%m-%d)}
JOBS=${JOBS:-1}
mkdir -p "$WORK" "$OUT"
OUT=$(cd "$OUT" && pwd)

# group -> "paths to mutate|tests that cover them" (plumbing tests first: they
# are fast and kill most mutants of the training code at once).
declare -A GROUPS_=(
  [training]="nnbackend/training/|tests/test_plumbing.py tests/test_training.py tests/test_fit.py tests/test_progress.py tests/test_reproducibility.py tests/test_checkpoint_kill.py"
  [engine]="nnbackend/engine.py|tests/test_plumbing.py tests/test_fit.py tests/test_chunked.py"
  [data]="nnbackend/data.py|tests/test_plumbing.py tests/test_bad_input.py tests/test_fit.py tests/test_labels.py"
  [kernels]="nnbackend/kernels.py|tests/test_kernels.py tests/test_plumbing.py tests/test_gradients.py tests/test_properties.py"
  [bound]="nnbackend/bound.py|tests/test_numpy_steps.py tests/test_plumbing.py tests/test_kernels.py tests/test_gradients.py"
  [network]="nnbackend/network.py|tests/test_plumbing.py tests/test_chunked.py tests/test_gradients.py tests/test_fit.py"
  [optim]="nnbackend/optim.py|tests/test_optim.py tests/test_fused_optim.py tests/test_training.py"
  [datafiles]="nnbackend/datafiles.py|tests/test_datasets.py tests/test_cli.py"
  [classifier]="nnbackend/classifier.py|tests/test_labels.py tests/test_fit.py tests/test_cli.py"
  [checkpoint]="nnbackend/checkpoint.py|tests/test_checkpoint_kill.py tests/test_training.py tests/test_fit.py"
)
ORDER=(training engine data network bound kernels optim checkpoint classifier datafiles)

if [ $# -gt 0 ]; then WANT=("$@"); else WANT=("${ORDER[@]}"); fi

run_group() {
  local group=$1 spec=${GROUPS_[$1]:-}
  if [ -z "$spec" ]; then echo "unknown group $group (one of ${ORDER[*]})" >&2; return 1; fi
  local paths=${spec%%|*} tests=${spec#*|}
  local tree=$WORK/$group
  rm -rf "$tree" && mkdir -p "$tree"
  (cd "$ROOT" && git ls-files -z | xargs -0 cp --parents -t "$tree" 2>/dev/null)
  cd "$tree" || return 1
  local start=$SECONDS
  # NumPy alone; -x: the first failing test kills the mutant.
  NNBACKEND_TEST_BACKENDS=numpy PYTHONPATH=$tree mutmut run \
      --paths-to-mutate "$paths" --tests-dir tests --simple-output --no-progress \
      --runner "python -m pytest -x -q -p no:cacheprovider -p no:randomly $tests" \
      > "$OUT/$group-run.log" 2>&1
  mutmut results > "$OUT/$group.txt" 2>&1
  : > "$OUT/$group-survivors.diff"
  for id in $(mutmut result-ids survived 2>/dev/null) $(mutmut result-ids suspicious 2>/dev/null) \
            $(mutmut result-ids timeout 2>/dev/null); do
    { echo "=== $group mutant $id"; mutmut show "$id"; } >> "$OUT/$group-survivors.diff" 2>&1
  done
  local killed survived timeout suspicious
  killed=$(mutmut result-ids killed 2>/dev/null | wc -w)
  survived=$(mutmut result-ids survived 2>/dev/null | wc -w)
  timeout=$(mutmut result-ids timeout 2>/dev/null | wc -w)
  suspicious=$(mutmut result-ids suspicious 2>/dev/null | wc -w)
  echo "$group ($paths): killed $killed, survived $survived, timeout $timeout," \
       "suspicious $suspicious, $((SECONDS - start)) s; tests: $tests" >> "$OUT/summary.txt"
}

running=0
for g in "${WANT[@]}"; do
  run_group "$g" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
cat "$OUT/summary.txt"
