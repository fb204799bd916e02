import pytest
import torch
from cola_lam import VectorQuantizer
from cola_lam.kernels import nearest_code_reference
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    num_codes=st.integers(1, 40),
    code_dim=st.integers(1, 16),
    l2_normalize=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_output_is_a_codebook_row(shape, num_codes, code_dim, l2_normalize, seed):
    torch.manual_seed(seed)
    vq = VectorQuantizer(num_codes, code_dim, l2_normalize=l2_normalize).eval()
    z = torch.randn(*shape, code_dim)
    out = vq(z)
    assert out.quantized.shape == z.shape
    assert out.indices.shape == z.shape[:-1] and out.indices.dtype == torch.int64
    assert ((out.indices >= 0) & (out.indices < num_codes)).all()
    assert torch.allclose(out.quantized, vq.codes()[out.indices], atol=1e-5, rtol=1e-5)
    flat = torch.nn.functional.normalize(z, dim=-1) if l2_normalize else z
    expected, _ = nearest_code_reference(flat.reshape(-1, code_dim), vq.codes())
    assert out.indices.reshape(-1).tolist() == expected.tolist()
    assert out.usage.dtype == torch.int64 and out.usage.shape == (num_codes,)
    assert out.usage.tolist() == torch.bincount(out.indices.reshape(-1), minlength=num_codes).tolist()
    if l2_normalize:
        assert torch.allclose(out.quantized.norm(dim=-1), torch.ones(shape), atol=1e-5, rtol=1e-5)


def test_straight_through_gradient_and_loss():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, beta=0.25)
    z = torch.randn(10, 4, requires_grad=True)
    out = vq(z)
    mse = (out.quantized.detach() - z.detach()).pow(2).mean()
    assert torch.allclose(out.loss, 1.25 * mse, atol=1e-6)
    (out.quantized * torch.arange(4.0)).sum().backward()
    assert torch.allclose(z.grad, torch.arange(4.0).expand(10, 4), atol=1e-6)

    z.grad = None
    vq.zero_grad()
    vq(z).loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    assert torch.allclose(z.grad, 0.25 * 2 * (z - out.quantized).detach() / z.numel(), atol=1e-6)


def test_ema_codebook_moves_to_assigned_mean_without_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 3, use_ema=True, ema_decay=0.5, dead_code_steps=0, codebook_init="random")
    vq.codebook.data = torch.tensor([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    vq.ema_embed_sum.copy_(vq.codebook.data)
    z = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], requires_grad=True)
    for _ in range(10):
        out = vq(z)
    assert not vq.codebook.requires_grad
    assert torch.allclose(vq.codebook[0], torch.ones(3), atol=1e-3, rtol=0)
    assert torch.allclose(vq.codebook[1], torch.full((3,), 10.0), atol=0.2, rtol=0)  # unused: kept
    out.loss.backward()
    assert vq.codebook.grad is None and z.grad is not None


@pytest.mark.parametrize("use_ema", [False, True])
def test_dead_code_restart_revives_dead_codes(use_ema):
    torch.manual_seed(0)
    vq = VectorQuantizer(
        8, 4, use_ema=use_ema, dead_code_steps=3, restart_buffer_size=64, codebook_init="random"
    )
    vq.codebook.data = torch.cat([torch.zeros(1, 4), torch.full((7, 4), 100.0)])
    vq.ema_embed_sum.copy_(vq.codebook.data)
    z = torch.randn(32, 4)
    for _ in range(2):
        assert vq(z).usage[1:].sum() == 0  # every input picks code 0, the rest are dead
    assert vq.steps_unused[1:].tolist() == [2] * 7
    vq(z)  # third unused step: codes 1..7 are re-seeded from recent inputs
    assert vq.steps_unused.tolist() == [0] * 8
    recent = vq.recent_inputs[: int(vq.recent_count)]
    for row in vq.codebook[1:]:
        assert (recent - row).abs().sum(1).min() < 1e-6
    assert (vq(z).usage > 0).sum() > 4


def test_eval_mode_leaves_state_alone():
    vq = VectorQuantizer(8, 4, use_ema=True, dead_code_steps=1).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(torch.randn(16, 4))
    for key, value in vq.state_dict().items():
        assert torch.equal(value, before[key])


def test_restart_state_is_checkpointed():
    vq = VectorQuantizer(8, 4, use_ema=True, dead_code_steps=50)
    for _ in range(3):
        vq(torch.randn(16, 4))
    state = vq.state_dict()
    for key in ("steps_unused", "recent_inputs", "recent_count", "recent_pointer", "ema_cluster_size"):
        assert key in state
    restored = VectorQuantizer(8, 4, use_ema=True, dead_code_steps=50)
    restored.load_state_dict(state)
    assert restored.steps_unused.tolist() == vq.steps_unused.tolist()
    assert int(restored.recent_count) == 48


def test_embed_and_bad_inputs():
    vq = VectorQuantizer(8, 4)
    assert torch.allclose(vq.embed(torch.tensor([[1, 7]])), vq.codebook[[1, 7]].unsqueeze(0), atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        vq.embed(torch.tensor([8]))
    with pytest.raises(ValueError, match="integer"):
        vq.embed(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        vq(torch.randn(3, 5))


def test_fresh_encoder_cluster_uses_many_codes_after_kmeans_init():
    # A fresh encoder's outputs sit in one tight cluster far from N(0, 1) codes: a random codebook hands
    # every input the same code before any training, the k-means one spreads them.
    torch.manual_seed(0)
    z = torch.full((256, 32), 0.2) + 0.05 * torch.randn(256, 32)
    random_vq = VectorQuantizer(32, 32, codebook_init="random")
    assert (random_vq(z).usage > 0).sum() <= 2
    vq = VectorQuantizer(32, 32)
    assert not bool(vq.initialized)
    usage = vq(z).usage
    assert bool(vq.initialized)
    assert (usage > 0).sum() >= 24 and usage.max() <= 32
    before = vq.codebook.detach().clone()
    vq(z + 1.0)  # initialized once: later batches do not re-seed it
    assert torch.equal(vq.codebook.detach(), before)


def test_kmeans_init_finds_planted_clusters_and_is_deterministic():
    torch.manual_seed(0)
    centers = 10.0 * torch.randn(4, 3)
    z = (centers[:, None] + 0.01 * torch.randn(4, 50, 3)).reshape(-1, 3)
    first, second = VectorQuantizer(4, 3), VectorQuantizer(4, 3)
    first.initialize_from(z, seed=3)
    second.initialize_from(z, seed=3)
    assert torch.equal(first.codebook, second.codebook)
    distance = torch.cdist(centers, first.codebook.detach())
    assert distance.min(dim=1).values.max() < 0.05  # every planted center has a code on it
    assert torch.equal(first.ema_embed_sum, first.codebook.detach())


def test_kmeans_init_with_fewer_inputs_than_codes_and_l2():
    vq = VectorQuantizer(16, 4, l2_normalize=True)
    vq.initialize_from(torch.randn(3, 4))
    assert torch.allclose(vq.codebook.norm(dim=-1), torch.ones(16), atol=1e-5)
    assert torch.isfinite(vq.codebook).all()


def test_initialized_codebook_survives_save_and_load():
    vq = VectorQuantizer(8, 4)
    vq.initialize_from(torch.randn(64, 4))
    restored = VectorQuantizer(8, 4)
    restored.load_state_dict(vq.state_dict())
    restored.train()
    before = restored.codebook.detach().clone()
    restored(torch.randn(16, 4) + 5.0)
    assert torch.equal(restored.codebook.detach(), before)


def test_kmeans_init_rejects_bad_inputs():
    vq = VectorQuantizer(8, 4)
    with pytest.raises(ValueError, match="code_dim"):
        vq.initialize_from(torch.randn(10, 5))
    with pytest.raises(ValueError, match="non-finite"):
        vq.initialize_from(torch.full((10, 4), float("nan")))
    with pytest.raises(ValueError, match="codebook_init"):
        VectorQuantizer(8, 4, codebook_init="uniform")


def test_embed_rejects_bad_indices():
    vq = VectorQuantizer(8, 4)
    with pytest.raises(ValueError, match=r"\[0, 8\), got values in \[-1, 8\]"):
        vq.embed(torch.tensor([-1, 8]))
    with pytest.raises(ValueError, match="integer"):
        vq.embed(torch.tensor([0.5]))
    assert vq.embed(torch.zeros(0, dtype=torch.long)).shape == (0, 4)


def test_remember_inputs_keeps_the_ring_buffer_out_of_autograd():
    from cola_lam.quantizer import remember_inputs

    vq = VectorQuantizer(8, 4)
    remember_inputs(vq, torch.randn(3, 4, requires_grad=True))
    assert not vq.recent_inputs.requires_grad and vq.recent_inputs.grad_fn is None
