"""The fused epoch kernel for networks whose parameters stay in global memory.

Where the parameters and a batch's activations do not fit a block's shared
memory, the kernel (:func:`global_kernel_source`) reads and updates the
parameters in place in global memory, where the GPU's L2 cache holds them
(an H100's 50 MB, an H200's 60 MB: [784,256,256,10] is 1.1 MB in float32).
The batch's work region (activations, gradients, partial sums) is in shared
memory where it fits, else in a global ``work`` buffer. It is still one
block of :data:`~.fused.GLOBAL_THREADS` threads, so ``__syncthreads()``
stays the only barrier.

The matrix products are tiled across the block's warps (``layout`` holds
the splits, see :class:`~.fused.Layout`):

- forward: one iteration per (input chunk, row group, unit); consecutive
  iterations are consecutive units j, so a warp reads 32 consecutive W
  entries of one input row; each thread keeps ``rows_per_thread`` rows'
  sums so one load of W serves them all; with the inputs split in chunks,
  a second loop adds the chunks' partial sums in order, adds b and applies
  the activation.
- input gradient: one iteration per (row, input, lane); ``lanes``
  consecutive iterations read consecutive entries of one W row (one 32-byte
  sector), each summing every lanes-th unit; a second loop adds the lanes.
- update: 4 consecutive parameters of a row an iteration, read and written
  16 bytes at a time, with an L1 prefetch of the parameters 4 iterations
  ahead, where the layer's ``fan_out`` is a multiple of 4
  (:func:`.source.update_loop`); else one parameter an iteration.

Every phase is a loop ``for (t = tid; t < work; t += nt)`` whose iterations
write disjoint elements, so the host build (one thread) runs the same
arithmetic in the same order per element.
"""

from __future__ import annotations

from .source import (_act, _act_backward, _kernel_head, _math_names, _shared_array, backward_phase,
                     batch_loop, kernel_setup, output_phase, param_name, update_statement, work_name)

__all__ = ["global_kernel_source"]


def _forward_layer(layout, spec, fn, l):
    """Layer l's outputs, tiled: (chunk, row group, unit) iterations, then the chunks' sum."""
    s, A, P = layout.sizes, work_name(layout), param_name(layout)
    fan_in, fan_out = s[l], s[l + 1]
    split, chunk = layout.forward_split[l]
    R, B = layout.rows_per_thread, layout.batch_size
    w, b = layout.w_offsets[l], layout.w_offsets[l] + fan_in * fan_out
    last = l == layout.n_layers - 1
    dst = layout.out_z if last else layout.acts[l + 1]
    value = "z" if last else _act(fn, spec.hidden_activation, "z")
    x = layout.acts[l]
    if split == 1:
        store = f"""const T z = acc[k] + {P}[{b} + j];
                {A}[{dst} + (r0 + k) * {fan_out} + j] = {value};"""
    else:
        store = f"{A}[{layout.scratch} + (s * {B} + r0 + k) * {fan_out} + j] = acc[k];"
    code = f"""
        {{
            const int groups = (nb + {R - 1}) / {R};
            for (int t = tid; t < {split} * groups * {fan_out}; t += nt) {{
                const int j = t % {fan_out}, q = t / {fan_out};
                const int r0 = (q % groups) * {R}, s = q / groups;
                const int i1 = s * {chunk} + {chunk} < {fan_in} ? s * {chunk} + {chunk} : {fan_in};
                T acc[{R}];
                for (int k = 0; k < {R}; ++k) acc[k] = (T)0;
                for (int i = s * {chunk}; i < i1; ++i) {{
                    const T wij = {P}[{w} + i * {fan_out} + j];
                    // Rows past nb (an earlier batch's, or zeros) are summed but never stored.
                    for (int k = 0; k < {R}; ++k) acc[k] += {A}[{x} + (r0 + k) * {fan_in} + i] * wij;
                }}
                for (int k = 0; k < {R} && r0 + k < nb; ++k) {{
                    {store}
                }}
            }}
        }}
        __syncthreads();"""
    if split > 1:
        code += f"""
        for (int t = tid; t < nb * {fan_out}; t += nt) {{
            const int j = t % {fan_out};
            T acc = {A}[{layout.scratch} + t];
            for (int s = 1; s < {split}; ++s) acc += {A}[{layout.scratch} + s * {B * fan_out} + t];
            const T z = acc + {P}[{b} + j];
            {A}[{dst} + t] = {value};
        }}
        __syncthreads();"""
    return code


def _dx_loop(layout, spec, l, dz, dnext):
    """Layer l's input gradient, tiled: (row, input, lane) iterations, then the lanes' sum."""
    fan_in, fan_out = layout.sizes[l], layout.sizes[l + 1]
    A, P = work_name(layout), param_name(layout)
    w, x, C = layout.w_offsets[l], layout.acts[l], layout.dx_lanes[l]
    through = _act_backward(spec.hidden_activation, "a", "acc")
    if C == 1:
        return f"""
        for (int t = tid; t < nb * {fan_in}; t += nt) {{
            const int r = t / {fan_in}, i = t - r * {fan_in};
            T acc = (T)0;
            for (int j = 0; j < {fan_out}; ++j) acc += {A}[{dz} + r * {fan_out} + j] * {P}[{w} + i * {fan_out} + j];
            const T a = {A}[{x} + t];
            (void)a;  // the identity's gradient does not read it
            {A}[{dnext} + t] = {through};
        }}
        __syncthreads();"""
    return f"""
        for (int t = tid; t < nb * {fan_in * C}; t += nt) {{
            const int c = t % {C}, q = t / {C};
            const int r = q / {fan_in}, i = q - r * {fan_in};
            T acc = (T)0;
            for (int j = c; j < {fan_out}; j += {C}) acc += {A}[{dz} + r * {fan_out} + j] * {P}[{w} + i * {fan_out} + j];
            {A}[{layout.scratch} + t] = acc;
        }}
        __syncthreads();
        for (int t = tid; t < nb * {fan_in}; t += nt) {{
            T acc = {A}[{layout.scratch} + t * {C}];
            for (int c = 1; c < {C}; ++c) acc += {A}[{layout.scratch} + t * {C} + c];
            const T a = {A}[{x} + t];
            (void)a;  // the identity's gradient does not read it
            {A}[{dnext} + t] = {through};
        }}
        __syncthreads();"""


def global_kernel_source(layout, spec, opt_name, dtype_name, multiclass):
    """CUDA C++ (and host C++) source of ``nnb_fused_epoch`` with the parameters in
    global memory: the kernel arguments of :func:`.source.kernel_source`, then
    ``work`` (``layout.work_elements()`` elements, at least 1: the work region
    where it is not in shared memory)."""
    fn = _math_names(dtype_name)
    code = [_forward_layer(layout, spec, fn, l) for l in range(layout.n_layers)]
    code += output_phase(layout, spec, fn, multiclass)
    code += backward_phase(layout, spec, update_statement(opt_name, fn, "params"), _dx_loop)
    if layout.acts_in == "shared":
        memory = f"""{_shared_array(layout.shared_bytes(dtype_name))}
    T* wk = (T*)nnb_shared;
    (void)work;"""
    else:
        memory = "    T* wk = work;"
    head = _kernel_head(layout, spec, opt_name, dtype_name, fn.T,
                        f"__launch_bounds__({layout.threads()}) ")
    return f"""{head}
{memory}
{kernel_setup()}
    // All of it, so rows past a short batch read zeros, never uninitialized memory.
    for (int t = tid; t < {layout.n_work}; t += nt) wk[t] = (T)0;
    __syncthreads();
{batch_loop(layout, "wk", chr(10).join(code))}
    if (tid == 0) {{ out[0] = loss_sum; out[1] = hit_sum; }}
}}
"""
