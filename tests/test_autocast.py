"""bf16 training steps under CUDA autocast's rules, on the CPU (`CudaAutocastEmulation`, see the Bi-CMCI notebook).

CUDA autocast refuses `binary_cross_entropy` and runs matrix products in bf16; CPU autocast does neither, so a
plain CPU test of `train_step(amp=True)` cannot see what a GPU run does. Under the emulation, PyTorch's own CUDA
autocast kernels decide every op's dtype (and raise where CUDA raises), and the step runs on CPU tensors."""
import copy
import math

import pytest
import torch

from kanoclip.bicmci import CudaAutocastEmulation
from kanoclip.knowledge import KnowledgeBank, builtin_knowledge
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
from kanoclip.train import TrainConfig, make_optimizer, train_step

# The maths that must compute in fp32 whatever autocast says: similarities, softmaxes, smoothing, scores, losses.
# (Names of kanoclip functions, as the emulation's log gives them; `loss` is `KAnoCLIP.loss`.)
FP32_FUNCTIONS = {"stage_map", "gaussian_blur", "fuse_maps", "global_score", "focal_loss", "dice_loss", "local_loss",
                  "global_loss", "total_loss", "kd_distances", "kd_loss", "loss"}
# bf16 and fp32 steps agree to within REL_TOL * |fp32 loss| + ABS_TOL per term. Measured over 3 steps: total and
# local within 4e-4 relative, glob within 2e-3, kd (small, through the bf16 text tower) within 1e-3 absolute.
REL_TOL, ABS_TOL = 1e-2, 2e-3


@pytest.fixture(scope="module")
def setup():
    "A tiny model with non-zero heads (so Bi-CMCI's blocks change the maps), its knowledge bank, one batch of features."
    torch.manual_seed(0)
    model = perturb_(KAnoCLIP(KAnoCLIPConfig.tiny(image_size=112)), std=0.05, seed=1)
    bank = KnowledgeBank(model.clip, model.backbone.tokenizer, builtin_knowledge(), classes=["bottle", "screw"])
    with torch.no_grad(): feats = model.encode(torch.randn(2, 3, 112, 112))
    masks = torch.zeros(2, 112, 112); masks[0, 30:60, 40:70] = 1
    return model, bank, (feats, masks, torch.tensor([1., 0.]), ["bottle", "screw"])


def steps(model, bank, batch, amp: bool, n: int = 3):
    "`n` training steps of a fresh copy of `model` on `batch`; the loss terms of each and the emulation's log."
    m = copy.deepcopy(model).train()
    opt = make_optimizer(m, TrainConfig(lr=1e-3))
    with CudaAutocastEmulation() as emu:
        return [train_step(m, opt, *batch, bank=bank, amp=amp) for _ in range(n)], emu.log


def test_bf16_step_follows_cuda_autocast(setup):
    model, bank, batch = setup
    losses, log = steps(model, bank, batch, amp=True, n=1)          # CUDA's 'unsafe to autocast' would raise here
    assert all(math.isfinite(v) for v in losses[0].values()), losses
    callers = {c for c, _, _ in log}
    assert FP32_FUNCTIONS <= callers, f"not exercised: {sorted(FP32_FUNCTIONS - callers)}"
    low = [(c, op) for c, op, dt in log if dt == torch.bfloat16]
    assert {"_sdpa", "_few_keys", "_few_queries"} & {c for c, _ in low}, "Bi-CMCI's attention should run in bf16"
    assert [(c, op) for c, op in low if c in FP32_FUNCTIONS] == []


def test_bf16_and_fp32_steps_agree(setup):
    model, bank, batch = setup
    bf16, _ = steps(model, bank, batch, amp=True)
    fp32, log = steps(model, bank, batch, amp=False)
    assert torch.bfloat16 not in {dt for _, _, dt in log}           # without autocast the emulation changes nothing
    for i, (a, b) in enumerate(zip(bf16, fp32)):
        for k in b:
            assert abs(a[k] - b[k]) <= REL_TOL * abs(b[k]) + ABS_TOL, f"step {i} {k}: bf16 {a[k]:.5f} vs fp32 {b[k]:.5f}"
    assert fp32[-1]["total"] < fp32[0]["total"]                     # the steps do learn


def test_bank_search_keeps_the_bank_dtype_under_autocast():
    "`FewShotDetector.predict(amp=True)` runs the bank search under bf16 autocast: it must stay in the bank's float16."
    from kanoclip.fewshot import nearest_similarity
    g = torch.Generator().manual_seed(0)
    q = torch.randn(300, 64, generator=g)
    bank = torch.nn.functional.normalize(torch.cat([q[:100] + 0.01 * torch.randn(100, 64, generator=g),
                                                    torch.randn(200, 64, generator=g)]), dim=-1).half()
    plain = nearest_similarity(q, bank, budget=64 * 1024)                # several blocks, fp16 as on a GPU
    with CudaAutocastEmulation() as emu, torch.autocast("cpu", dtype=torch.bfloat16):
        amp = nearest_similarity(q, bank, budget=64 * 1024)
    mm = [dt for c, op, dt in emu.log if c == "nearest_similarity" and op in ("matmul", "__matmul__")]
    assert mm and set(mm) == {torch.float16}, f"bank search ran in {set(mm)}"
    assert torch.equal(amp, plain)                                      # bf16 would move similarities near 1 by ~0.004
