"""One ActionConditionedDiT training step (flow-matching loss with actions, backward, AdamW).

On CUDA: the ``base`` preset in bf16 autocast, printing tokens/s and MFU (model FLOPs / step time / peak; peak
from COLA_PEAK_TFLOPS or benchtools.GPU_PEAKS, e.g. 989 TFLOP/s dense bf16 on an H100 SXM or H200). On CPU:
the ``tiny`` preset at batch 8 (8 frames of 64x64), printing s/step and steps/s.

    uv run pytest benchmarks/bench_train_step.py -s --benchmark-disable
"""

import os
import sys
import time
from pathlib import Path

import torch
from cola_wm import ActionConditionedDiT, DiTConfig, flow_matching_loss

sys.path.insert(0, str(Path(__file__).parent))
from benchtools import gpu_peaks

CUDA = torch.cuda.is_available()


def _peak_flops() -> float | None:
    return gpu_peaks(torch.cuda.get_device_name())[1]


def _train_flops_per_step(model: ActionConditionedDiT, batch: int, frames: int) -> float:
    """6 x per-token matmul parameters x tokens, plus attention scores and mixing (fwd 4 x seq x width per
    token per attention, x3 for training); per-frame modulation and the action stack are negligible and left
    out."""
    config = model.config
    tokens = batch * frames * config.tokens_per_frame
    per_token = sum(
        module.weight.numel()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and ("blocks." in name and "modulation" not in name)
        and not name.startswith("action_conditioner")
    )
    per_token += model.patch_embed.weight.numel() + model.final_layer.linear.weight.numel()
    attention = 3 * 4 * config.width * (config.tokens_per_frame + frames / 2) * config.depth
    return 6 * per_token * tokens + attention * tokens


def _step(model, optimizer, video, actions):
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=CUDA):
        loss = flow_matching_loss(model, video, actions, num_context=1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def test_train_step(benchmark):
    device = "cuda" if CUDA else "cpu"
    config = DiTConfig.preset("base" if CUDA else "tiny")
    batch = int(os.environ.get("COLA_BENCH_BATCH", 2 if CUDA else 8))
    frames = config.num_frames
    torch.manual_seed(0)
    model = ActionConditionedDiT(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=CUDA)
    shape = (batch, frames, config.channels, config.frame_size, config.frame_size)
    video = torch.rand(shape, device=device) * 2 - 1
    actions = torch.randn(batch, frames - 1, config.action_dim, device=device)

    warmup, repeats = (3, 10) if CUDA else (1, 3)
    for _ in range(warmup):
        _step(model, optimizer, video, actions)
    if CUDA:
        torch.cuda.synchronize()
    begin = time.perf_counter()
    for _ in range(repeats):
        _step(model, optimizer, video, actions)
    if CUDA:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - begin) / repeats

    tokens = batch * frames * config.tokens_per_frame
    preset = "base" if CUDA else "tiny"
    line = f"train step [{preset}, batch {batch}, {tokens} tokens, {torch.get_num_threads()} threads]: "
    line += f"{seconds:.3f} s/step, {1 / seconds:.2f} steps/s, {tokens / seconds:,.0f} tokens/s"
    if CUDA and (peak := _peak_flops()):
        line += f", MFU {_train_flops_per_step(model, batch, frames) / seconds / peak:.1%}"
    print(line)
    benchmark(lambda: _step(model, optimizer, video, actions))
