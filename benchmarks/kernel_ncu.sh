#!/usr/bin/env bash
# Nsight Compute on the CuPy kernels (issues 25 and 26): each configuration of
# benchmarks/kernel_ncu.py launched once under `ncu --set full`, its raw page
# kept as CSV, and a summary of every launch: duration, the SMs' and
# memory's share of their peaks, issue slots, pipes, occupancy, registers,
# shared-memory bank conflicts and each warp's top stall reasons.
#
#   bash benchmarks/kernel_ncu.sh           # results in ./kernel_ncu_results
#   OUT=/some/dir bash benchmarks/kernel_ncu.sh
#
# Run it as its own device call after benchmarks/gpu_check.sh (about 1-2
# minutes: a Python start and NVRTC builds per configuration, then ~40
# replays of each kernel; at most KERNEL_NCU_TOTAL, 240 s). The clocks are left alone (--clock-control none).
# ncu reads hardware counters on the Firecracker machines, not on gVisor
# (.library/device/KINDS.md): there the report says the counters could not
# be read. Without ncu it says so and exits 0.
#
# It leaves in $OUT: summary.txt, ncu.log, and NAME.csv for each configuration
# (the .ncu-rep files are removed: the CSV holds every metric).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-kernel_ncu_results}
mkdir -p "$OUT"
# shellcheck source=benchmarks/gpu_env.sh
. benchmarks/gpu_env.sh  # the wheels, PYTHONPATH, JAX's memory

# ncu where PATH has it, else Nsight Compute's own folders (the device
# machines' image keeps it under /opt/nvidia/nsight-compute/VERSION/).
NCU=${NCU:-$(command -v ncu || ls -d /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu \
  2>/dev/null | tail -n 1)}
NCU=${NCU:-ncu}
if ! command -v "$NCU" >/dev/null 2>&1; then
  echo "kernel_ncu: Nsight Compute ($NCU) is not installed here; nothing profiled" \
    | tee "$OUT/summary.txt"
  exit 0
fi
{ "$NCU" --version; nvidia-smi -L; } > "$OUT/ncu.log" 2>&1
status=0
# Each configuration under KERNEL_NCU_SECONDS; none starts that could carry the
# call past KERNEL_NCU_TOTAL (default 240 s: the summary is written at the end;
# a call after gpu_check.sh has 5-6 minutes of device time left at most).
per=${KERNEL_NCU_SECONDS:-60}
total=${KERNEL_NCU_TOTAL:-240}
for name in $(python3 benchmarks/kernel_ncu.py list); do
  rm -f "$OUT/$name.csv"  # an earlier call's figures must not pass for this one's
  if [ $((SECONDS + per + 10)) -gt "$total" ]; then
    echo "kernel_ncu: $name not run: ${SECONDS} s of KERNEL_NCU_TOTAL=${total} used" \
      | tee -a "$OUT/ncu.log"
    status=1
    continue
  fi
  echo "kernel_ncu: $name started at ${SECONDS} s" | tee -a "$OUT/ncu.log"
  timeout -k 10 "$per" "$NCU" --clock-control none --set full \
    --import-source no --kernel-name regex:^nnb_ -f -o "$OUT/$name" \
    python3 benchmarks/kernel_ncu.py launch "$name" >> "$OUT/ncu.log" 2>&1 || status=1
  if [ -f "$OUT/$name.ncu-rep" ]; then
    # Base units (ns, bytes), which the report reads, whatever ncu's default.
    "$NCU" -i "$OUT/$name.ncu-rep" --page raw --csv --print-units base > "$OUT/$name.csv" \
      2>> "$OUT/ncu.log" || status=1
    rm -f "$OUT/$name.ncu-rep"
  fi
done
python3 benchmarks/kernel_ncu.py report "$OUT" | tee "$OUT/summary.txt"
tail -n 5 "$OUT/ncu.log"
echo "kernel_ncu: done in ${SECONDS} s (status $status)" | tee -a "$OUT/summary.txt"
exit $status
