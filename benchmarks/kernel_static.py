"""The CuPy kernels as NVRTC builds them for a GPU, on a machine without one.

For each kernel the benchmarks time (the fused epoch kernel of the small
model's SGD and mini-batch-64 steps and of the mid model's SGD step, on one
block and as the cluster of eight blocks that runs it on sm_90; the
full-batch gradient kernel of the small model at 1e6 rows, with and without
its prefetch of X, and with its gradient in 4x4 blocks only): registers a
thread and bytes spilled (ptxas, through NVRTC as CuPy compiles), and,
where ``nvdisasm`` is found (a CUDA toolkit, or the one in the ``triton``
wheel), the machine code's instruction counts: all, shared-memory loads,
and 16-byte global loads and stores. These count the code, not what runs;
what a change saves in time needs a GPU.

    python benchmarks/kernel_static.py              # sm_90 (H100/H200)
    python benchmarks/kernel_static.py --arch sm_80
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from nvrtc import MISSING, cubin, registers, spilled_bytes  # noqa: E402  (tests/nvrtc.py)

from nnbackend.backends.cupy import batch as B  # noqa: E402
from nnbackend.backends.cupy import fused as F  # noqa: E402
from nnbackend.backends.cupy.grid import CLUSTER_BLOCKS, grid_source  # noqa: E402
from nnbackend.network import NetSpec  # noqa: E402

SMALL = NetSpec("sigmoid", "sigmoid", "mse", "sum")
MID = NetSpec("relu", "softmax", "cross_entropy", "mean")
HOPPER_SHARED = 227 * 1024


def kernels():
    """``[(name, entry, source)]``: the kernels the benchmarks time, float32 SGD."""
    out = []
    for name, sizes, batch, spec in (("fused [32,64,1] sgd", [32, 64, 1], 1, SMALL),
                                     ("fused [32,64,1] mini-batch 64", [32, 64, 1], 64, SMALL),
                                     ("fused [784,256,256,10] sgd", [784, 256, 256, 10], 1, MID)):
        layout = F.Layout(sizes, batch, "float32", HOPPER_SHARED)
        out.append((name, "nnb_fused_epoch",
                    F.kernel_source(layout, spec, "sgd", "float32", sizes[-1] > 1)))
    # The mid model's SGD as cupy-fused runs it on sm_90: one cluster of 8 blocks.
    layout = F.choose_layout([784, 256, 256, 10], 1, "float32", HOPPER_SHARED, 90)[0]
    out.append(("fused [784,256,256,10] sgd, cluster of 8", "nnb_grid_epoch",
                grid_source(F.kernel_source(layout, MID, "sgd", "float32", True),
                            cluster=CLUSTER_BLOCKS)))
    layout = B.choose_layout([32, 64, 1], "float32", 10**6, limit=HOPPER_SHARED)
    blocks_only = B.BatchLayout(layout.sizes, "float32", layout.rows, layout.threads,
                                layout.prefetch, strips=False)
    for name, used in (("batch [32,64,1] 1e6 rows", layout),
                       ("batch [32,64,1] 1e6 rows, X not prefetched", layout.without_prefetch()),
                       ("batch [32,64,1] 1e6 rows, 4x4 blocks only", blocks_only)):
        out.append((name, "nnb_batch_grad",
                    B.kernel_source(used, SMALL, "sgd", "float32", False)))
    return out


def find_nvdisasm():
    """A path to ``nvdisasm``, or None."""
    found = shutil.which("nvdisasm")
    if found:
        return found
    try:
        import triton  # its wheel carries CUDA's binary tools
    except ImportError:
        return None
    paths = glob.glob(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia",
                                   "bin", "nvdisasm"))
    return paths[0] if paths else None


def instruction_counts(binary, entry, nvdisasm):
    """``(instructions, LDS, 16-byte LDG/STG)`` of ``entry`` in a cubin."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(binary)
        f.flush()
        text = subprocess.run([nvdisasm, "-c", f.name], capture_output=True, text=True,
                              check=True).stdout
    # The entry's section: from its "//---- .text.NAME ----" banner to the next one.
    sections = re.split(r"^//-+ \.text\.", text, flags=re.M)
    mine = next((sec for sec in sections if sec.split()[0] == entry), "")
    code = [line for line in mine.splitlines() if re.search(r"/\*[0-9a-f]{4,}\*/\s+\S", line)]
    return (len(code), sum(bool(re.search(r"\bLDS\b|\bLDS\.", line)) for line in code),
            sum(bool(re.search(r"(LDG|STG)\.E\.128", line)) for line in code))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_90")
    args = parser.parse_args(argv)
    if MISSING is not None:
        print(f"kernel_static: {MISSING}; nothing built")
        return 0
    nvdisasm = find_nvdisasm()
    print(f"kernels built for {args.arch} by NVRTC"
          + ("" if nvdisasm else " (no nvdisasm here: instruction counts left out)"))
    print(f"  {'kernel':44s} {'regs':>5s} {'spill B':>8s}"
          + (f" {'instr':>6s} {'LDS':>5s} {'16B g':>6s}" if nvdisasm else ""))
    for name, entry, source in kernels():
        regs = registers(source, args.arch)[entry]
        spilled = spilled_bytes(source, args.arch)[entry]
        line = f"  {name:44s} {regs:5d} {spilled:8d}"
        if nvdisasm:
            n, lds, wide = instruction_counts(cubin(source, args.arch), entry, nvdisasm)
            line += f" {n:6d} {lds:5d} {wide:6d}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
