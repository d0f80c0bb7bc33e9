"""NVRTC, the compiler CuPy's RawKernel uses, called through ctypes: the
generated CUDA sources compile for a GPU on a machine without one.

The library comes from the ``nvidia-cuda-nvrtc-cu12`` wheel (the test extra,
Linux) or a CUDA toolkit; :data:`MISSING` says why it is not here otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import struct

__all__ = ["MISSING", "compile_for_gpu", "cubin", "registers", "spilled_bytes"]


def _find():
    try:
        import nvidia.cuda_nvrtc as wheel  # the nvidia-cuda-nvrtc-cu12 wheel

        for folder in wheel.__path__:
            for path in sorted(glob.glob(os.path.join(folder, "lib", "libnvrtc.so*"))):
                if "builtins" not in path and ".alt." not in path:
                    return path
    except ImportError:
        pass
    return ctypes.util.find_library("nvrtc")


def _load():
    path = _find()
    if path is None:
        return None, ("NVRTC is not installed (pip install nvidia-cuda-nvrtc-cu12, or a CUDA "
                      "toolkit)")
    try:
        return ctypes.CDLL(path), None
    except OSError as exc:
        return None, f"NVRTC ({path}) does not load: {exc}"


_LIB, MISSING = _load()
# What CuPy's RawKernel compiles with: the kernels' own option, and the one
# CuPy's compiler adds to every build (cupy/cuda/compiler.py,
# _compile_with_cache_cuda: float32 subnormals flushed to zero).
CUPY_OPTIONS = (b"--std=c++14", b"-ftz=true")


def compile_for_gpu(source: str, arch: str = "sm_90", name: str = "kernel.cu", extra=()):
    """``(ok, log, ptx)``: ``source`` compiled by NVRTC as CuPy compiles it
    (:data:`CUPY_OPTIONS`, and ``extra`` options) for ``arch``; with an ``sm_`` arch
    NVRTC also runs ptxas."""
    lib = _LIB
    program = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), 0,
                                    None, None)
    if status:
        return False, f"nvrtcCreateProgram: status {status}", ""
    try:
        options = [*CUPY_OPTIONS, f"-arch={arch}".encode()] + [o.encode() for o in extra]
        status = lib.nvrtcCompileProgram(program, len(options),
                                         (ctypes.c_char_p * len(options))(*options))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        if status:
            return False, log.value.decode(errors="replace"), ""
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(program, ptx)
        return True, log.value.decode(errors="replace"), ptx.value.decode(errors="replace")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def cubin(source: str, arch: str = "sm_90") -> bytes:
    """``source`` built by NVRTC for ``arch`` (an ``sm_`` arch), as the cubin (ELF) bytes."""
    lib = _LIB
    program = ctypes.c_void_p()
    lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"kernel.cu", 0, None, None)
    try:
        options = [*CUPY_OPTIONS, f"-arch={arch}".encode()]
        status = lib.nvrtcCompileProgram(program, len(options),
                                         (ctypes.c_char_p * len(options))(*options))
        if status:
            raise RuntimeError(f"NVRTC could not compile the source (status {status})")
        size = ctypes.c_size_t()
        lib.nvrtcGetCUBINSize(program, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetCUBIN(program, buf)
        return buf.raw
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def registers(source: str, arch: str = "sm_90") -> dict:
    """``{kernel: registers a thread}`` of ``source`` built for ``arch`` by NVRTC (its
    cubin's EIATTR_REGCOUNT entries: ptxas's own count, as the driver sees it)."""
    elf = cubin(source, arch)
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize)
                for i in range(shnum)]

    def text(table, offset):
        start = sections[table][4] + offset
        return elf[start:elf.index(b"\0", start)].decode()

    symbols = {}
    for sec in sections:
        if sec[1] == 2:  # SHT_SYMTAB: 24-byte entries, names in the linked string table
            for j in range(sec[5] // 24):
                st_name = struct.unpack_from("<I", elf, sec[4] + 24 * j)[0]
                symbols[j] = text(sec[6], st_name)
    counts = {}
    for sec in sections:
        if text(shstrndx, sec[0]) != ".nv.info":
            continue
        data, i = elf[sec[4]:sec[4] + sec[5]], 0
        while i < len(data):
            fmt, attr = data[i], data[i + 1]
            size = struct.unpack_from("<H", data, i + 2)[0] if fmt == 0x04 else 0
            if attr == 0x2F:  # EIATTR_REGCOUNT: (symbol, registers)
                symbol, count = struct.unpack_from("<II", data, i + 4)
                counts[symbols[symbol]] = count
            i += 4 + size
    return counts


def spilled_bytes(source: str, arch: str = "sm_90") -> dict:
    """``{kernel: bytes}`` that ptxas spills to local memory (stores plus loads) in
    ``source`` built for ``arch``, from its verbose report."""
    ok, log, _ = compile_for_gpu(source, arch, extra=("-Xptxas", "-v"))
    if not ok:
        raise RuntimeError(f"NVRTC could not compile the source: {log}")
    spilled, kernel = {}, None
    for line in log.splitlines():
        named = re.search(r"Function properties for (\w+)", line)
        if named:
            kernel = named.group(1)
        counts = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if counts and kernel is not None:
            spilled[kernel] = int(counts.group(1)) + int(counts.group(2))
    return spilled
