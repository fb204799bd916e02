"""VectorQuantizer: nearest code by squared L2, straight-through gradients, k-means codebook initialization,
dead-code restart, EMA."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import CODEBOOK_INITS
from .kernels import nearest_code


@dataclass
class VQOutput:
    """What the quantizer returns for ``z [..., code_dim]``.

    quantized: the picked codes ``[..., code_dim]`` with straight-through gradients to ``z``;
    indices: int64 code ids ``[...]``; loss: codebook + beta * commitment (scalar);
    usage: int64 ``[num_codes]``, how often each code was picked in this batch.
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    usage: torch.Tensor


class VectorQuantizer(nn.Module):
    """Quantizes ``z [..., code_dim]`` to the nearest of ``num_codes`` codes.

    Without EMA the codebook is a trained parameter pulled by the codebook loss; with ``use_ema`` it follows
    an exponential moving average of the encoder outputs assigned to each code and gets no gradient. A code
    unused for ``dead_code_steps`` training steps is re-seeded from a ring buffer of recent encoder outputs
    (0 disables). All of that state lives in buffers, so it is saved with the weights. Single-process: the EMA
    statistics and restarts are not synchronised across data-parallel ranks.

    ``codebook_init="kmeans"`` (the default) places the codes by k-means on the first encoder outputs the
    quantizer sees in training (or on those given to ``initialize_from``). A random ``N(0, 1)`` codebook
    (``"random"``) is far wider than a fresh encoder's outputs, which sit in one tight cluster: every input
    then picks the same code from the first step, a collapse that no training signal has caused yet.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        use_ema: bool = False,
        ema_decay: float = 0.99,
        l2_normalize: bool = False,
        dead_code_steps: int = 100,
        restart_buffer_size: int = 1024,
        codebook_init: str = "kmeans",
    ) -> None:
        super().__init__()
        if num_codes < 1 or code_dim < 1:
            raise ValueError(f"num_codes and code_dim must be >= 1, got {num_codes} and {code_dim}.")
        if dead_code_steps < 0 or restart_buffer_size < 1:
            raise ValueError("dead_code_steps must be >= 0 and restart_buffer_size >= 1.")
        if codebook_init not in CODEBOOK_INITS:
            raise ValueError(f"codebook_init must be one of {CODEBOOK_INITS}, got {codebook_init!r}.")
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.beta = beta
        self.use_ema = use_ema
        self.ema_decay = ema_decay
        self.l2_normalize = l2_normalize
        self.dead_code_steps = dead_code_steps

        codebook = torch.randn(num_codes, code_dim)
        if l2_normalize:
            codebook = F.normalize(codebook, dim=-1)
        self.codebook = nn.Parameter(codebook, requires_grad=not use_ema)
        self.register_buffer("ema_cluster_size", torch.ones(num_codes))
        self.register_buffer("ema_embed_sum", codebook.clone())
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("recent_inputs", torch.zeros(restart_buffer_size, code_dim))
        self.register_buffer("recent_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("recent_pointer", torch.zeros((), dtype=torch.long))
        # Saved with the weights, so a trained or loaded codebook is never re-initialized.
        self.register_buffer("initialized", torch.tensor(codebook_init == "random"))

    def codes(self) -> torch.Tensor:
        """The codebook as used for lookup (unit-norm rows when ``l2_normalize``)."""
        return F.normalize(self.codebook, dim=-1) if self.l2_normalize else self.codebook

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors ``[..., code_dim]`` for integer ``indices [...]`` in ``[0, num_codes)``."""
        check_code_indices(indices, self.num_codes)
        return F.embedding(indices.long(), self.codes())

    def forward(self, z: torch.Tensor) -> VQOutput:
        if z.dim() < 1 or z.shape[-1] != self.code_dim:
            raise ValueError(f"z must have shape [..., {self.code_dim}] (code_dim), got {tuple(z.shape)}.")
        flat = z.reshape(-1, self.code_dim)
        if self.l2_normalize:
            flat = F.normalize(flat, dim=-1)
        if self.training and not bool(self.initialized):
            self.initialize_from(flat)
        codes = self.codes()
        indices, _ = nearest_code(flat.detach(), codes.detach())
        quantized = F.embedding(indices, codes)

        commitment = F.mse_loss(flat, quantized.detach().to(flat.dtype))
        codebook_loss = 0.0 if self.use_ema else F.mse_loss(quantized, flat.detach().to(quantized.dtype))
        loss = codebook_loss + self.beta * commitment
        usage = torch.bincount(indices, minlength=self.num_codes)

        if self.training:
            with torch.no_grad():
                if self.use_ema:
                    self._ema_update(flat.detach().float(), indices, usage)
                self._restart_dead_codes(flat.detach().float(), usage)

        straight_through = flat + (quantized - flat).detach()
        return VQOutput(
            quantized=straight_through.reshape(*z.shape[:-1], self.code_dim),
            indices=indices.reshape(z.shape[:-1]),
            loss=loss,
            usage=usage,
        )

    @torch.no_grad()
    def initialize_from(self, z: torch.Tensor, iterations: int = 10, seed: int = 0) -> None:
        """Set the codebook to k-means centroids of encoder outputs ``z [..., code_dim]`` (k-means++ seeding,
        then ``iterations`` Lloyd steps) and mark it initialized. Fewer rows than codes are repeated with
        small noise, so every code starts near the data. Deterministic for a given ``z`` and ``seed``, so
        data-parallel ranks that pass the same ``z`` get the same codebook."""
        if z.dim() < 1 or z.shape[-1] != self.code_dim or z.numel() == 0:
            raise ValueError(
                f"z must be a non-empty tensor of shape [..., {self.code_dim}] (code_dim), "
                f"got {tuple(z.shape)}."
            )
        flat = z.detach().reshape(-1, self.code_dim).float()
        if not torch.isfinite(flat).all():
            raise ValueError("cannot initialize the codebook from non-finite encoder outputs (NaN or inf).")
        if self.l2_normalize:
            flat = F.normalize(flat, dim=-1)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        data = flat.cpu()
        if data.shape[0] < self.num_codes:
            repeats = data[torch.randint(data.shape[0], (self.num_codes,), generator=generator)]
            scale = 1e-3 * data.std().clamp_min(1e-6)
            data = repeats + scale * torch.randn(repeats.shape, generator=generator)
        centroids = _kmeans(data, self.num_codes, iterations, generator)
        if self.l2_normalize:
            centroids = F.normalize(centroids, dim=-1)
        centroids = centroids.to(self.codebook.device, self.codebook.dtype)
        self.codebook.data.copy_(centroids)
        self.ema_embed_sum.copy_(centroids)
        self.ema_cluster_size.fill_(1.0)
        self.steps_unused.zero_()
        self.initialized.fill_(True)

    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor, usage: torch.Tensor) -> None:
        decay = self.ema_decay
        embed_sum = torch.zeros_like(self.ema_embed_sum).index_add_(0, indices, flat)
        self.ema_cluster_size.mul_(decay).add_(usage.float(), alpha=1 - decay)
        self.ema_embed_sum.mul_(decay).add_(embed_sum, alpha=1 - decay)
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        eps = 1e-5
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + eps) / (total + self.num_codes * eps) * total
        self.codebook.data.copy_(self.ema_embed_sum / smoothed[:, None])

    def _restart_dead_codes(self, flat: torch.Tensor, usage: torch.Tensor) -> None:
        remember_inputs(self, flat)
        self.steps_unused.add_(1).masked_fill_(usage > 0, 0)
        if self.dead_code_steps == 0:
            return
        dead = self.steps_unused >= self.dead_code_steps
        # Tensor-only selection (no .item()) so a training step never waits on the GPU here.
        picks = (torch.rand(self.num_codes, device=flat.device) * self.recent_count).long()
        candidates = self.recent_inputs[picks]
        self.codebook.data.copy_(torch.where(dead[:, None], candidates, self.codebook.data))
        if self.use_ema:
            self.ema_cluster_size.copy_(
                torch.where(dead, torch.ones_like(self.ema_cluster_size), self.ema_cluster_size)
            )
            self.ema_embed_sum.copy_(torch.where(dead[:, None], candidates, self.ema_embed_sum))
        self.steps_unused.masked_fill_(dead, 0)


def check_code_indices(indices: torch.Tensor, num_codes: int) -> None:
    """Raise a ``ValueError`` unless ``indices`` is an integer tensor of code ids in ``[0, num_codes)``."""
    if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
        raise ValueError("indices must be an integer torch.Tensor of code ids.")
    if indices.numel() and (indices.min() < 0 or indices.max() >= num_codes):
        raise ValueError(
            f"indices must lie in [0, {num_codes}), got values in "
            f"[{int(indices.min())}, {int(indices.max())}]."
        )


@torch.no_grad()
def remember_inputs(quantizer: nn.Module, flat: torch.Tensor) -> None:
    """Write encoder outputs ``flat [N, code_dim]`` into ``quantizer``'s ring buffer (its ``recent_inputs``,
    ``recent_count`` and ``recent_pointer`` buffers), a random subset when N exceeds the buffer."""
    capacity = quantizer.recent_inputs.shape[0]
    if flat.shape[0] > capacity:
        flat = flat[torch.randperm(flat.shape[0], device=flat.device)[:capacity]]
    slots = (quantizer.recent_pointer + torch.arange(flat.shape[0], device=flat.device)) % capacity
    quantizer.recent_inputs[slots] = flat
    quantizer.recent_pointer.copy_((quantizer.recent_pointer + flat.shape[0]) % capacity)
    quantizer.recent_count.copy_((quantizer.recent_count + flat.shape[0]).clamp(max=capacity))


def _kmeans(data: torch.Tensor, k: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` centroids of ``data [N, D]`` (N >= k): k-means++ seeding, then Lloyd steps; an emptied cluster
    keeps its previous centroid."""
    first = int(torch.randint(data.shape[0], (1,), generator=generator))
    centroids = [data[first]]
    distance = (data - data[first]).pow(2).sum(-1)
    for _ in range(1, k):
        # All remaining points coincide with a centroid: any pick is as good as another.
        weights = distance if distance.sum() > 0 else torch.ones_like(distance)
        pick = int(torch.multinomial(weights, 1, generator=generator))
        centroids.append(data[pick])
        distance = torch.minimum(distance, (data - data[pick]).pow(2).sum(-1))
    centroids = torch.stack(centroids)
    for _ in range(iterations):
        assignment = torch.cdist(data, centroids).argmin(dim=1)
        counts = torch.bincount(assignment, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assignment, data)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)
    return centroids
