"""The measurements behind gpu_suite.py, one function per task.

A task gets ``dry`` (CPU, tiny sizes: the Triton kernels in Triton's interpreter, torch.compile with the
`aot_eager` backend, so that dynamo and AOT autograd still trace but nothing is compiled) and ``emit``, which
it calls with one record per row as soon as the row is measured: a task killed at its time limit keeps the
rows it finished. A row holds raw figures (seconds, bytes moved, FLOPs, peak memory, the eager and
torch.compile baselines' seconds) and its targets; gpu_suite.py turns them into GB/s, % of peak, MFU and
speed-ups against the GPU's peaks. Whatever fails inside a row (a baseline, a size) is caught and written into
the row's ``error``; the task goes on.

Import this module only after gpu_suite.py has set TRITON_INTERPRET (dry) and PYTORCH_NVML_BASED_CUDA_CHECK:
the bench_* modules ask torch.cuda.is_available() at import, which must not initialise CUDA before the fork.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._dynamo
import triton  # once here rather than in every forked child (it takes seconds)
from cola_eval.planning.costs import PixelMSECost
from cola_lam.kernels import nearest_code_reference, nearest_code_triton
from cola_wm import ActionConditionedDiT, DiTConfig
from cola_wm.kernels import (
    adaln_modulate_reference,
    adaln_modulate_triton,
    gated_residual_reference,
    gated_residual_triton,
)

sys.path.insert(0, str(Path(__file__).parent))
from bench_nearest_code import eager_cdist_argmin
from bench_planning import WORLD_MODEL_CONFIGS, _seconds_per_step, _world_model
from bench_train_step import _step, _train_flops_per_step
from benchtools import median_seconds, peak_extra_bytes

Emit = Callable[[dict[str, Any]], None]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Both sides compute in float32 and round once to the output dtype, so they may differ by an ulp or two of it
# (bf16 has 8 significant bits, fp16 11) plus float32 summation order over a row or a frame's tokens.
TOLERANCES = {"fp32": (1e-4, 1e-4), "bf16": (2e-2, 2e-2), "fp16": (5e-3, 5e-3)}
# nearest_code's distances are float32 on both sides whatever the inputs' dtype.
NEAREST_TOLERANCE = (1e-3, 1e-4)
FRAMES = 16  # per-frame modulation, as in bench_adaln.py
GPU_REPEATS = 20


def _attempt(errors: list[str], label: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or None with the exception noted in ``errors``: a failing baseline must not lose the row."""
    try:
        return fn()
    except Exception as exc:
        errors.append(f"{label}: {type(exc).__name__}: {exc}".strip())
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # an out-of-memory baseline must not starve the next measurement
        return None


def _row(name: str, errors: list[str], **fields: Any) -> dict[str, Any]:
    return {"kind": "row", "name": name, **fields, "error": "; ".join(errors) or None}


def _device(dry: bool) -> str:
    if not dry and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device visible; run with --dry on a machine without a GPU")
    return "cpu" if dry else "cuda"


def _compile(fn: Callable, dry: bool) -> Callable:
    # A fresh dynamo cache per size: each size gets its own static-shape graph, the best case for compile.
    torch._dynamo.reset()
    return torch.compile(fn, dynamic=False, backend="aot_eager" if dry else "inductor")


def device_record(dry: bool) -> dict[str, Any]:
    """What the suite ran on: the GPU's name (which picks its peaks) and the library versions."""
    name = "cpu" if dry else torch.cuda.get_device_name()
    return {
        "kind": "device",
        "name": name,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
    }


# ---- (a) every Triton kernel against its PyTorch reference ----------------------------------------------


def _close(got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float, label: str) -> float:
    """Max abs difference, after checking it is within ``atol + rtol * |want|`` everywhere."""
    torch.testing.assert_close(got.float(), want.float(), atol=atol, rtol=rtol, msg=lambda m: f"{label}: {m}")
    return (got.float() - want.float()).abs().max().item() if got.numel() else 0.0


def _check_nearest_code(shapes: list[tuple[int, int, int]], dtype: torch.dtype, device: str) -> str:
    # Forward only: the kernel returns indices (not differentiable) and its distances are used detached.
    worst = 0.0
    for n, k, d in shapes:
        gen = torch.Generator(device).manual_seed(n + k + d)
        z = torch.randn(n, d, generator=gen, device=device).to(dtype)
        codebook = torch.randn(k, d, generator=gen, device=device).to(dtype)
        indices, sq_dist = nearest_code_triton(z, codebook)
        ref_indices, ref_dist = nearest_code_reference(z, codebook)
        label = f"N={n} K={k} D={d}"
        worst = max(worst, _close(sq_dist, ref_dist, *NEAREST_TOLERANCE, f"{label} distances"))
        # A near-tie may round either way: the code picked must be as near as the reference's.
        picked = (z.float() - codebook.float()[indices]).pow(2).sum(1)
        _close(picked, ref_dist, *NEAREST_TOLERANCE, f"{label} distance to the picked code")
        agreement = (indices == ref_indices).float().mean().item()
        assert agreement > 0.99, f"{label}: only {agreement:.4f} of indices agree with the reference"
    return (
        f"max abs distance error {worst:.2e} over {len(shapes)} shapes (fwd only: indices have no gradient)"
    )


def _modulation_inputs(
    batch: int, frames: int | None, patches: int, channels: int, count: int, dtype: torch.dtype, device: str
) -> list[torch.Tensor]:
    gen = torch.Generator(device).manual_seed(batch * 1000 + patches + channels)
    tokens = patches * (frames or 1)
    mod_shape = (batch, channels) if frames is None else (batch, frames, channels)
    x = torch.randn(batch, tokens, channels, generator=gen, device=device) * 3 + 1
    mods = [torch.randn(mod_shape, generator=gen, device=device) for _ in range(count)]
    return [t.to(dtype).requires_grad_() for t in (x, *mods)]


def _check_fused(
    fused: Callable, reference: Callable, extra_input: bool, shapes: list, dtype_name: str, device: str
) -> str:
    """Forward and every input's gradient of ``fused`` against ``reference``, over ``shapes``."""
    dtype = DTYPES[dtype_name]
    atol, rtol = TOLERANCES[dtype_name]
    worst = 0.0
    for shape in shapes:
        if extra_input:  # adaln_modulate(x, shift, scale, eps)
            inputs = _modulation_inputs(*shape, count=2, dtype=dtype, device=device)
            call = lambda fn, inputs=inputs: fn(*inputs, 1e-6)
        else:  # gated_residual(x, y, gate)
            x, gate = _modulation_inputs(*shape, count=1, dtype=dtype, device=device)
            inputs = [x, torch.randn_like(x).requires_grad_(), gate]
            call = lambda fn, inputs=inputs: fn(*inputs)
        out, ref = call(fused), call(reference)
        assert out.dtype == ref.dtype == dtype, f"{shape}: output dtype {out.dtype}, reference {ref.dtype}"
        worst = max(worst, _close(out, ref, atol, rtol, f"{shape} forward"))
        grad = torch.randn_like(out)
        got = torch.autograd.grad(out, inputs, grad)
        want = torch.autograd.grad(ref, inputs, grad)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            worst = max(worst, _close(g, w, atol, rtol, f"{shape} gradient of input {i}"))
    return f"max abs error {worst:.2e} over {len(shapes)} shapes, forward and all gradients"


def kernel_checks(dry: bool, emit: Emit) -> None:
    """nearest_code (forward), adaln_modulate and gated_residual (forward, backward): fp32, bf16, fp16."""
    device = _device(dry)
    emit(device_record(dry))
    # Ragged sizes as in the tests, and on a GPU one at the benchmarks' scale; each new shape and dtype costs
    # Triton compiles (about a second each on a cold cache), so there are few.
    nearest_shapes = [(37, 5, 3), (100, 70, 33)]
    # (batch, frames or None for per-sample modulation, tokens per frame, channels)
    fused_shapes: list = [(2, 3, 37, 45), (3, None, 50, 130)]
    if not dry:
        nearest_shapes.append((262144, 1024, 64))
        fused_shapes.append((2, FRAMES, 8192, 1152))
    kernels = {
        "nearest_code": lambda dtype_name: _check_nearest_code(nearest_shapes, DTYPES[dtype_name], device),
        "adaln_modulate": lambda dtype_name: _check_fused(
            adaln_modulate_triton, adaln_modulate_reference, True, fused_shapes, dtype_name, device
        ),
        "gated_residual": lambda dtype_name: _check_fused(
            gated_residual_triton, gated_residual_reference, False, fused_shapes, dtype_name, device
        ),
    }
    for kernel, check in kernels.items():
        for dtype_name in DTYPES:
            atol, rtol = NEAREST_TOLERANCE if kernel == "nearest_code" else TOLERANCES[dtype_name]
            target = f"= reference (atol {atol:g}, rtol {rtol:g})"
            name = f"check {kernel} {dtype_name}"
            try:
                emit(_row(name, [], check={"passed": True, "detail": check(dtype_name)}, target=target))
            except AssertionError as exc:
                emit(_row(name, [], check={"passed": False, "detail": str(exc)}, target=target))
            except Exception as exc:
                emit(_row(name, [f"{type(exc).__name__}: {exc}"], target=target))


# ---- (b) the benchmarks at the issues' sizes -------------------------------------------------------------


def nearest_code_bench(dry: bool, emit: Emit) -> None:
    """Kernel vs eager cdist + argmin vs torch.compile of it; target >= 3x eager with O(N) extra memory.

    The largest N of bench_nearest_code.py's grid (where the N x K distance matrix costs most), both K and D.
    """
    device = _device(dry)
    emit(device_record(dry))
    sizes = [(256, 32, 32)] if dry else [(262144, k, d) for k in (32, 1024) for d in (32, 64)]
    for n, k, d in sizes:
        _nearest_code_size(n, k, d, dry, device, emit)


def _nearest_code_size(n: int, k: int, d: int, dry: bool, device: str, emit: Emit) -> None:
    repeats = 1 if dry else GPU_REPEATS
    errors: list[str] = []
    gen = torch.Generator(device).manual_seed(0)
    z = torch.randn(n, d, generator=gen, device=device)
    codebook = torch.randn(k, d, generator=gen, device=device)
    eager = lambda: eager_cdist_argmin(z, codebook)
    eager_seconds = _attempt(errors, "eager", lambda: median_seconds(eager, repeats))
    eager_memory = _attempt(errors, "eager memory", lambda: peak_extra_bytes(eager, device))
    compiled = _attempt(errors, "compile", lambda: _compile(eager_cdist_argmin, dry))
    compile_seconds = compiled and _attempt(
        errors, "compile", lambda: median_seconds(lambda: compiled(z, codebook), repeats)
    )
    # bf16 inputs take the tensor-core path; the casts are part of the call, as in bench_nearest_code.py.
    kernels = {
        "fp32": (lambda: nearest_code_triton(z, codebook), 0),
        "bf16": (lambda: nearest_code_triton(z.bfloat16(), codebook.bfloat16()), 2 * (n + k) * d),
    }
    for label, (kernel, cast_bytes) in kernels.items():
        row_errors = list(errors)
        seconds = _attempt(row_errors, "kernel", lambda kernel=kernel: median_seconds(kernel, repeats))
        memory = _attempt(row_errors, "kernel memory", lambda kernel=kernel: peak_extra_bytes(kernel, device))
        # O(N): the int64 index and fp32 distance per row (16 B with the allocator's rounding), the
        # codebook's norms and their temporaries, the bf16 copies, and 1 MiB of slack; the eager code's
        # N x K matrix is far above this at these sizes.
        bound = 16 * n + 8 * k * d + cast_bytes + 2**20
        emit(
            _row(
                f"nearest_code {label} N={n} K={k} D={d}",
                row_errors,
                seconds=seconds,
                bytes=4 * (n + k) * d + 12 * n,
                eager_seconds=eager_seconds,
                compile_seconds=compile_seconds,
                memory_bytes=memory,
                eager_memory_bytes=eager_memory,
                targets=[["vs_eager", ">=", 3.0], ["memory_bytes", "<=", bound]],
            )
        )


def _fused_bench(
    dry: bool, emit: Emit, op: str, fused: Callable, reference: Callable, streams: tuple[int, int]
) -> None:
    """``fused`` vs ``reference`` eager and compiled, forward and forward + backward, bf16.

    ``streams``: how many [tokens, C] tensors the forward and the backward must read or write at least, so
    bytes moved / time is the achieved bandwidth. Target: >= 80% of HBM peak, >= 2x eager, >= torch.compile.
    """
    device = _device(dry)
    emit(device_record(dry))
    # The largest token count of bench_adaln.py's grid at each width: big enough to be bandwidth-bound. The
    # interpreter runs each (row block, frame) program in Python, so the dry run modulates 2 frames, not 16.
    frames = 2 if dry else FRAMES
    sizes = [(2 * frames * 8, 48)] if dry else [(262144, c) for c in (384, 768, 1152)]
    for tokens, channels in sizes:
        # Drawn on the device: a CPU generator would spend seconds on 300M-element tensors.
        gen = torch.Generator(device).manual_seed(0)
        randn = lambda *shape, gen=gen: torch.randn(*shape, generator=gen, device=device).bfloat16()
        x = randn(2, tokens // 2, channels)
        if op == "adaln_modulate":
            inputs = [x, randn(2, frames, channels), randn(2, frames, channels)]
        else:
            gate = randn(2, frames, channels)
            inputs = [x, torch.randn_like(x), gate]
        for tensor in inputs:
            tensor.requires_grad_()
        extra = (1e-6,) if op == "adaln_modulate" else ()
        _fused_size(op, fused, reference, inputs, extra, streams, dry, emit)


def _fused_size(
    op: str,
    fused: Callable,
    reference: Callable,
    inputs: list[torch.Tensor],
    extra: tuple,
    streams: tuple[int, int],
    dry: bool,
    emit: Emit,
) -> None:
    repeats = 1 if dry else GPU_REPEATS
    x = inputs[0]
    grad = torch.randn_like(x)
    element_bytes = x.numel() * x.element_size()
    phases = {
        "fwd": (lambda fn: fn(*inputs, *extra), streams[0] * element_bytes),
        # autograd.grad, not backward: accumulating into .grad would add a read and a write per call.
        "fwd+bwd": (
            lambda fn: torch.autograd.grad(fn(*inputs, *extra), inputs, grad),
            (streams[0] + streams[1]) * element_bytes,
        ),
    }
    errors: list[str] = []
    compiled = _attempt(errors, "compile", lambda: _compile(reference, dry))
    for phase, (call, moved) in phases.items():
        row_errors = list(errors)
        timed = lambda fn, label, call=call, errors=row_errors: _attempt(
            errors, label, lambda: median_seconds(lambda: call(fn), repeats)
        )
        emit(
            _row(
                f"{op} {phase} bf16 T={x.shape[0] * x.shape[1]} C={x.shape[2]}",
                row_errors,
                seconds=timed(fused, "fused"),
                bytes=moved,
                eager_seconds=timed(reference, "eager"),
                compile_seconds=compiled and timed(compiled, "compile"),
                targets=[["hbm_fraction", ">=", 0.8], ["vs_eager", ">=", 2.0], ["vs_compile", ">=", 1.0]],
            )
        )


def adaln_bench(dry: bool, emit: Emit) -> None:
    """Fused AdaLN modulation: the forward reads x and writes y; the backward reads x and dy, writes dx."""
    _fused_bench(dry, emit, "adaln_modulate", adaln_modulate_triton, adaln_modulate_reference, (2, 3))


def gated_residual_bench(dry: bool, emit: Emit) -> None:
    """Fused gated residual: the forward reads x, y, writes out; the backward reads dout, y, writes dy."""
    _fused_bench(dry, emit, "gated_residual", gated_residual_triton, gated_residual_reference, (3, 3))


def train_step_bench(dry: bool, emit: Emit) -> None:
    """The DiT ``base`` training step in bf16 autocast (bench_train_step.py's), target >= 40% MFU.

    MFU's FLOPs are counted analytically by bench_train_step._train_flops_per_step (6 x matmul parameters x
    tokens plus attention), not measured with FlopCounterMode. Batch 2 is bench_train_step.py's default on a
    GPU; batch 4 shows how far a larger batch moves it.
    """
    device = _device(dry)
    emit(device_record(dry))
    preset = "tiny" if dry else "base"
    config = DiTConfig.preset(preset)
    torch.manual_seed(0)
    model = ActionConditionedDiT(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=not dry)
    frames = config.num_frames
    for batch in (2,) if dry else (2, 4):
        errors: list[str] = []
        shape = (batch, frames, config.channels, config.frame_size, config.frame_size)
        video = torch.rand(shape, device=device) * 2 - 1
        actions = torch.randn(batch, frames - 1, config.action_dim, device=device)
        step = lambda video=video, actions=actions: _step(model, optimizer, video, actions)

        def warm_then_time(step: Callable[[], object] = step) -> float:
            # Two warm-up steps beyond median_seconds' one, for AdamW's state and the allocator to settle.
            for _ in range(0 if dry else 2):
                step()
            return median_seconds(step, 1 if dry else 10)

        seconds = _attempt(errors, "step", warm_then_time)
        tokens = batch * frames * config.tokens_per_frame
        emit(
            _row(
                f"DiT {preset} train step, batch {batch}, {tokens} tokens",
                errors,
                seconds=seconds,
                flops=_train_flops_per_step(model, batch, frames),
                tokens=tokens,
                targets=[["mfu", ">=", 0.4]],
            )
        )
        del video, actions
        if not dry:
            torch.cuda.empty_cache()


def mpc_step_bench(dry: bool, emit: Emit) -> None:
    """One world-model MPC step (bench_planning.py's `full` size on a GPU, `smoke` dry), target <= 100 ms."""
    device = _device(dry)
    emit(device_record(dry))
    size = "smoke" if dry else "full"
    config = WORLD_MODEL_CONFIGS[size]
    errors: list[str] = []
    seconds = _attempt(
        errors,
        "MPC step",
        lambda: _seconds_per_step(config, _world_model(config, device), PixelMSECost(), 1 if dry else 3),
    )
    emit(
        _row(
            f"MPC step ({size}: tiny DiT, horizon {config.horizon}, {config.samples} samples, "
            f"{config.iterations} CEM iterations, {config.euler_steps} Euler steps)",
            errors,
            seconds=seconds,
            targets=[["seconds", "<=", 0.1]],
        )
    )
