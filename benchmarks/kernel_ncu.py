"""Nsight Compute's view of the CuPy kernels: where they wait, not only how long.

The H200 runs timed the kernels' phases by leaving them out
(``fused_profile.py``, ``batch_kernel_time.py``), which says what each phase
costs but not what it waits on: the fused kernel's SGD update (1.05 µs of
2.35 a step) did not speed up when its loads were unrolled, and the batch
gradient kernel spends a third of a 1e6-row epoch with no compute. The
hardware counters say why: each warp's stall reasons, the issue slots used,
occupancy, the pipes' and memory's share of their peaks, shared-memory bank
conflicts.

``benchmarks/kernel_ncu.sh`` runs Nsight Compute (``ncu``) once per
configuration below, each a process that launches its kernels once
(``launch NAME``); then ``report`` reads each report's raw page (CSV) and
prints one block per kernel launch::

    python benchmarks/kernel_ncu.py list            # the configurations
    python benchmarks/kernel_ncu.py launch NAME     # under ncu: its kernels, once
    python benchmarks/kernel_ncu.py report DIR      # DIR/NAME.csv for each NAME

The configurations are the small model's fused step (SGD at N=1e3,
mini-batch 64 at N=1e4), the mid model's SGD step, and the small model's
full-batch epoch at N=1e6 with the layout the executor picks, with that
layout's tiles of X loaded without the prefetch, and with its gradient in
4x4 blocks only (no strips at the layers' edges).
"""

from __future__ import annotations

import csv
import os
import re
import sys

CONFIGS = {
    "fused-small-sgd": "the fused epoch kernel, [32,64,1] SGD, N=1e3",
    "fused-small-mb64": "the fused epoch kernel, [32,64,1] mini-batch 64, N=1e4",
    "fused-mid-sgd": "the fused epoch kernel, [784,256,256,10] SGD, N=500",
    "batch-small-1e6": "the full-batch kernels, [32,64,1], N=1e6 (the executor's layout)",
    "batch-small-1e6-plain": "the full-batch kernels, [32,64,1], N=1e6, X not prefetched",
    "batch-small-1e6-blocks": "the full-batch kernels, [32,64,1], N=1e6, 4x4 blocks only",
}

# (label, metric names to try in order, scale): the raw page's names; the
# first one present is shown.
METRICS = [
    ("duration us", ["gpu__time_duration.sum"], 1e-3),
    ("SM throughput %", ["sm__throughput.avg.pct_of_peak_sustained_elapsed"], 1),
    ("memory throughput %", ["gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed"],
     1),
    ("issue slots busy %", ["smsp__issue_active.avg.pct_of_peak_sustained_active",
                            "sm__instruction_throughput.avg.pct_of_peak_sustained_active"], 1),
    ("FMA pipe %", ["sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active",
                    "sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active"], 1),
    ("LSU pipe %", ["sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active"], 1),
    ("achieved occupancy %", ["sm__warps_active.avg.pct_of_peak_sustained_active"], 1),
    ("theoretical occupancy %", ["sm__maximum_warps_per_active_cycle_pct"], 1),
    ("registers a thread", ["launch__registers_per_thread"], 1),
    ("blocks, threads", ["launch__grid_size", "launch__block_size"], 1),
    ("warp cycles an instruction", ["smsp__average_warps_active_per_issue_active.ratio",
                                    "smsp__average_warp_latency_per_inst_issued.ratio"], 1),
    ("shared bank conflicts", ["l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum"], 1),
    ("shared wavefronts", ["l1tex__data_pipe_lsu_wavefronts_mem_shared.sum"], 1),
    ("DRAM read MB", ["dram__bytes_read.sum"], 1e-6),
]
# A warp's stall reasons: cycles stalled for each, per issued instruction.
STALL = re.compile(r"^smsp__average_warps_issue_stalled_([a-z_]+)_per_issue_active\.ratio$")
NAME_COLUMNS = ("Kernel Name", "Function Name", "Demangled Name")


def _number(text):
    """A CSV cell as a float (ncu may group thousands with commas), or None."""
    try:
        return float(str(text).replace(",", ""))
    except ValueError:
        return None


def read_raw(path):
    """``[{column: cell}]``, one per kernel launch, from ``ncu --page raw --csv``
    (its second row, the units, left out)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    start = next((i for i, row in enumerate(rows) if any(n in row for n in NAME_COLUMNS)), None)
    if start is None:
        return []
    header = rows[start]
    name_at = next(header.index(n) for n in NAME_COLUMNS if n in header)
    launches = []
    for row in rows[start + 1:]:
        if len(row) != len(header) or not row[name_at].strip():
            continue  # the units row, or a line of ncu's own
        launches.append(dict(zip(header, row)))
    return launches


def _kernel_name(launch):
    name = next((launch[n] for n in NAME_COLUMNS if n in launch), "?")
    return name.split("(")[0]


def describe(launch, top=5):
    """Lines for one launch: the metrics of :data:`METRICS` and its ``top`` stall reasons."""
    lines = [f"  kernel {_kernel_name(launch)}"]
    for label, names, scale in METRICS:
        values = [_number(launch[n]) for n in names if n in launch]
        values = [v for v in values if v is not None]
        if label == "blocks, threads":
            text = ", ".join(f"{v:.0f}" for v in values) or "n/a"
        else:
            text = f"{values[0] * scale:.4g}" if values else "n/a"
        lines.append(f"    {label:<28} {text}")
    stalls = sorted(((v, m.group(1)) for k, cell in launch.items()
                     if (m := STALL.match(k)) and (v := _number(cell)) is not None), reverse=True)
    if stalls:
        lines.append("    stalls (cycles per issued instruction): "
                     + ", ".join(f"{reason} {v:.3g}" for v, reason in stalls[:top]))
    else:
        lines.append("    stalls: n/a (no warp-state metrics in this report)")
    return lines


def report(folder):
    """The summary of every configuration's ``folder/NAME.csv`` present, as text."""
    out = []
    for name, what in CONFIGS.items():
        path = os.path.join(folder, f"{name}.csv")
        if not os.path.exists(path):
            out.append(f"{name}: not profiled ({path} is missing)")
            continue
        launches = read_raw(path)
        out.append(f"{name}: {what}: {len(launches)} kernel launch(es)")
        for launch in launches:
            out += describe(launch)
    return "\n".join(out)


def _batch_variant(change):
    """The full-batch epoch at 1e6 rows with the executor's layout as ``change`` leaves it."""
    import cupy

    from batch_kernel_time import _grad_task
    from nnbackend.backends.cupy import batch as B

    n = 10**6
    task, params, opt = _grad_task(n)
    device = task.backend.device
    layout = change(B.choose_layout([32, 64, 1], "float32", n, B._sm_count(device),
                                    B.shared_limit(device)))
    per_sm = int(device.attributes["MaxSharedMemoryPerMultiprocessor"])
    blocks = layout.grid(n, B._sm_count(device), max(1, min(8, per_sm // (layout.shared_bytes()
                                                                          + 1024))))
    with device:
        epoch = B.make_epoch(cupy, task.spec, opt, task.plan, task.X, task.Y, None, layout,
                             blocks, B.cuda_launcher, device)
    return lambda: epoch(params, opt.init(params))


def _blocks_only(layout):
    from nnbackend.backends.cupy import batch as B

    return B.BatchLayout(layout.sizes, layout.dtype_name, layout.rows, layout.threads,
                         layout.prefetch, strips=False)


def launch(name):
    """Run configuration ``name``'s kernels once each (ncu profiles each launch)."""
    import cupy

    from nnbackend.bench.workloads import nnbackend_epoch

    makers = {
        "fused-small-sgd": lambda: nnbackend_epoch("cupy", None, "sgd", 1000)[0],
        "fused-small-mb64": lambda: nnbackend_epoch("cupy", None, "minibatch", 10_000)[0],
        "fused-mid-sgd": lambda: nnbackend_epoch("cupy", None, "sgd", 500, model="mid")[0],
        "batch-small-1e6": lambda: nnbackend_epoch("cupy", None, "batch", 10**6)[0],
        "batch-small-1e6-plain": lambda: _batch_variant(lambda layout: layout.without_prefetch()),
        "batch-small-1e6-blocks": lambda: _batch_variant(_blocks_only),
    }
    step = makers[name]()
    step()
    cupy.cuda.runtime.deviceSynchronize()
    print(f"kernel_ncu: {name} launched", flush=True)


def main(argv):
    if not argv or argv[0] not in ("list", "launch", "report"):
        print(__doc__)
        return 2
    if argv[0] == "list":
        print("\n".join(CONFIGS))
        return 0
    if argv[0] == "launch":
        if len(argv) != 2 or argv[1] not in CONFIGS:
            print(f"kernel_ncu: launch one of {list(CONFIGS)}")
            return 2
        launch(argv[1])
        return 0
    print(report(argv[1] if len(argv) > 1 else "."))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
