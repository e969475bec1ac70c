"""The tiny model learns: a few hundred Adam steps of eq. 13 on five generated images drive the loss down and put the
top of the anomaly map inside the square defect.

The frozen CLIP-VV features are computed once; only `model.heads` (prompts, Bi-CMCI, Conv-Adapter) runs per step.
112 px input (7 x 7 patches of 16 px) keeps the 200 steps at ~10 s on 2 CPU cores.

Measured (image seeds 0-5, 200 steps): total loss falls to 0.18-0.22 of its first value; the argmax of the map lies in
the square on 24/24 training images. On 3 held-out images per seed it does on 11/18 (3, 2, 2, 3, 1, 0): the heads
overfit four images of a random-weight backbone, so held-out localisation is printed, not asserted."""
import numpy as np
import pytest
import torch

from kanoclip.model import KAnoCLIP, KAnoCLIPConfig

SIZE, SIDE, STEPS, CLS = 112, 32, 200, "tile"
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def scene(rng, defect=True):
    "A woven-looking texture (product of sines, noise); with `defect`, a bright or dark square at a random place."
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    f, ph = rng.uniform(6, 10, 2), rng.uniform(0, 2 * np.pi, 2)
    bg = (0.5 + 0.12 * np.sin(2 * np.pi * (f[0] * xx + ph[0])) * np.sin(2 * np.pi * (f[1] * yy + ph[1]))
          + rng.normal(0, 0.04, (SIZE, SIZE)))
    img = bg[None] * np.array([1.0, 0.9, 0.8])[:, None, None]
    mask = np.zeros((SIZE, SIZE), np.float32)
    if defect:
        y, x = rng.integers(8, SIZE - SIDE - 8, 2)
        img[:, y:y + SIDE, x:x + SIDE] = rng.choice([0.95, 0.05])
        mask[y:y + SIDE, x:x + SIDE] = 1
    img = (np.clip(img, 0, 1) - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    return torch.tensor(img, dtype=torch.float32), torch.from_numpy(mask)


def peak_in_defect(maps, masks) -> list[bool]:
    "Whether the highest pixel of each anomaly map lies inside that image's defect mask."
    idx = maps.flatten(1).argmax(1)
    return [bool(m.flatten()[i] > 0) for m, i in zip(masks, idx)]


@pytest.fixture(scope="module")
def learned():
    rng = np.random.default_rng(0)
    train = [scene(rng) for _ in range(4)] + [scene(rng, defect=False)]
    held = [scene(rng) for _ in range(3)]
    x, masks = torch.stack([t[0] for t in train]), torch.stack([t[1] for t in train])
    labels = torch.tensor([1.0, 1, 1, 1, 0])
    with torch.random.fork_rng():   # seeded head initialisation, without touching the global generator
        torch.manual_seed(0)
        model = KAnoCLIP(KAnoCLIPConfig.tiny(image_size=SIZE))
    with torch.no_grad(): feats = model.encode(x)   # frozen: once
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    history = []
    for _ in range(STEPS):
        losses = model.loss(model.heads(feats, [CLS] * len(x)), masks, labels)
        opt.zero_grad(); losses["total"].backward(); opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    return model, x, masks, labels, held, history


def test_loss_goes_down(learned):
    *_, history = learned
    first, last = history[0], history[-1]
    assert last["total"] < 0.5 * first["total"], (first, last)        # measured: 0.18-0.22 x over 6 seeds
    assert last["local"] < 0.5 * first["local"] and last["glob"] < first["glob"]
    assert first["kd"] == last["kd"] == 0.0                           # no knowledge bank given


def test_top_of_map_inside_the_defect(learned):
    model, x, masks, labels, held, _ = learned
    scores, maps = model.predict(x, CLS)
    assert maps.shape == (5, SIZE, SIZE)
    assert all(peak_in_defect(maps[:4], masks[:4])), peak_in_defect(maps[:4], masks[:4])
    # the defect-free image scores below every defective one
    assert scores[4] < scores[:4].min(), scores
    hx, hm = torch.stack([h[0] for h in held]), torch.stack([h[1] for h in held])
    print(f"held-out images with the map's peak inside the square: {peak_in_defect(model.predict(hx, CLS)[1], hm)}")
