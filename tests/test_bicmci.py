"Bi-CMCI and deformable attention as the model uses them: paper-sized grids, dtypes, checkpoints, stacked input."
import pytest
import torch
from safetensors.torch import load_file, save_file

from kanoclip.bicmci import BiCMCI, gaussian_blur, stage_maps
from kanoclip.deformable import DeformableAttention


def feats(n_stages=4, b=2, grid=(6, 7), c=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, grid[0] * grid[1], c, generator=g) for _ in range(n_stages)], torch.randn(b, 2, c, generator=g)


def perturb(m, std=0.05, seed=1):
    "Random weights everywhere, so every branch acts (a stand-in for a trained module)."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters(): p.add_(torch.randn(p.shape, generator=g) * std)
    return m


def test_untrained_is_plain_similarity_at_vit_b_sizes():
    "ViT-B/16 at 224 px: C = 512, 14 x 14 grid, 8 heads; the untrained blocks return their inputs bit for bit."
    p, t = feats(b=1, grid=(14, 14), c=512)
    out = BiCMCI(512)(p, t, (14, 14), 224)
    for got, want in zip(out["stage_maps"], stage_maps(p, t, (14, 14), 224)): assert torch.equal(got, want)
    assert out["anomaly_map"].shape == (1, 224, 224)


def test_paper_grid_37x37():
    "ViT-L/14 at 518 px: a 37 x 37 grid; the trained-like module gives finite maps in [0, 1] at 518 x 518."
    p, t = feats(n_stages=2, b=1, grid=(37, 37), c=32)
    out = perturb(BiCMCI(32, n_stages=2, n_heads=4))(p, t, (37, 37), 518)
    assert out["anomaly_map"].shape == (1, 518, 518)
    assert 0 <= out["anomaly_map"].min() and out["anomaly_map"].max() <= 1


def test_stacked_stages_and_shared_text():
    "Stages stacked in one tensor [n_stages, B, HW, C] and text [2, C] are accepted."
    p, t = feats()
    m = perturb(BiCMCI(32, n_heads=4))
    a, b = m(p, t[:1].expand(2, -1, -1), (6, 7), 32), m(torch.stack(p), t[0], (6, 7), 32)
    torch.testing.assert_close(a["anomaly_map"], b["anomaly_map"])


def test_checkpoint_round_trip(tmp_path):
    "The state dict saves to safetensors and loads into a fresh module with identical outputs."
    p, t = feats()
    m = perturb(BiCMCI(32, n_heads=4, stride=2))
    save_file(m.state_dict(), tmp_path / "w.safetensors")
    m2 = BiCMCI(32, n_heads=4, stride=2)
    m2.load_state_dict(load_file(tmp_path / "w.safetensors"))
    assert torch.equal(m(p, t, (6, 7), 32)["anomaly_map"], m2(p, t, (6, 7), 32)["anomaly_map"])


def test_half_precision_inputs():
    "Encoder outputs in fp16/bf16 go through float32 heads; the maps come out float32 and match fp32 inputs."
    p, t = feats()
    m = perturb(BiCMCI(32, n_heads=4))
    ref = m([x.half().float() for x in p], t.half().float(), (6, 7), 32)["anomaly_map"]
    got = m([x.half() for x in p], t.half(), (6, 7), 32)["anomaly_map"]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref)
    assert m([x.bfloat16() for x in p], t.bfloat16(), (6, 7), 32)["anomaly_map"].dtype == torch.float32


def test_float64_module():
    p, t = feats()
    m = perturb(BiCMCI(32, n_heads=4)).double()
    out = m([x.double() for x in p], t.double(), (6, 7), 32)
    assert torch.isfinite(out["anomaly_map"]).all()


def test_deformable_gradcheck():
    "Analytic gradients of the deformable attention (sampling, offsets, bias) match finite differences."
    torch.manual_seed(0)
    m = DeformableAttention(8, n_heads=2, n_groups=2, offset_range=0.8).double()
    x = torch.randn(1, 12, 8, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m(x, (3, 4)), (x,), eps=1e-6, atol=1e-4, fast_mode=True)


def test_blur_keeps_device_and_dtype():
    x = torch.rand(2, 16, 16, dtype=torch.float64)
    y = gaussian_blur(x, 2.0)
    assert y.dtype == torch.float64 and y.device == x.device
    torch.testing.assert_close(y.sum((1, 2)), x.sum((1, 2)))    # reflect padding conserves mass


@pytest.mark.parametrize("kw, arg", [(dict(n_heads=3), "n_heads"), (dict(n_heads=8, n_groups=3), "n_groups"),
                                     (dict(kernel_size=2), "kernel_size"), (dict(offset_range=-1), "offset_range")])
def test_bad_config_names_argument(kw, arg):
    with pytest.raises(ValueError, match=arg): BiCMCI(32, **kw)
