"""The real path at the paper's size, on the CPU, with random weights: ViT-L-14-336-quickgelu at 518 px (37 x 37
patches, 4 stages of 768 dims), its weights read through `--pretrained FILE` from files in OpenAI's release format
(a TorchScript archive, and a plain state dict), then `kanoclip train` (one step on 2 images, feature cache on),
`kanoclip test` and `kanoclip predict`.

Marked slow (2.5 minutes and 5.5 GB of memory on one core of a shared machine, see the README): `python -m pytest tests` skips it,
CI runs it in a separate step with `python -m pytest -m slow tests`."""
import gc
import json
import math
import warnings

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

import kanoclip.train
from kanoclip.backbone import DEFAULT_BACKBONE
from kanoclip.cli import main
from kanoclip.model import KAnoCLIP
from kanoclip.synthetic import make_synthetic
from kanoclip.train import _size, cache_bytes

pytestmark = pytest.mark.slow
GRID, DIM, LAYERS = (37, 37), 768, [6, 12, 18, 24]     # ViT-L/14 at 518 px: 14 px patches, 768-d joint space


def openai_files(folder):
    "Random ViT-L/14@336 weights written as OpenAI ships them (fp16 TorchScript with its size records) and as a state dict."
    torch.manual_seed(0)
    model = open_clip.create_model(DEFAULT_BACKBONE, pretrained=None).half().eval()
    for name, v in dict(input_resolution=336, context_length=77, vocab_size=49408).items():
        if hasattr(model, name): delattr(model, name)                  # open_clip keeps two of them as plain ints
        model.register_buffer(name, torch.tensor(v))                   # OpenAI's archives carry all three as tensors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                # torch marks TorchScript as deprecated
        torch.jit.save(torch.jit.script(model), folder / "ViT-L-14-336px.pt")
    for name in ("input_resolution", "context_length", "vocab_size"): delattr(model, name)
    torch.save(model.state_dict(), folder / "ViT-L-14-336px-state.pt")
    return folder / "ViT-L-14-336px.pt", folder / "ViT-L-14-336px-state.pt"


def test_paper_scale_train_test_predict(tmp_path, capsys, monkeypatch):
    scripted, plain = openai_files(tmp_path)
    aux = make_synthetic(tmp_path / "aux", classes=["plate"], n_train=0, n_normal=1, n_anomalous=1, size=96)
    target = make_synthetic(tmp_path / "target", classes=["ring"], n_train=0, n_normal=1, n_anomalous=1, size=96)
    run, res, pred = tmp_path / "run", tmp_path / "results", tmp_path / "pred"
    cpu = ["--device", "cpu", "--amp", "off"]

    # Without network, the openai tag fails at once and says what to do.
    assert main(["train", "--data", str(aux), "--out", str(run), "--pretrained", "openai", *cpu]) == 2
    err = capsys.readouterr().err
    assert f"cannot load pretrained='openai' for backbone '{DEFAULT_BACKBONE}'" in err and err.startswith("kanoclip train: error: --pretrained:")
    assert "hub cannot be reached" in err and "pass the path of the file as pretrained" in err and err.count("\n") == 1

    seen = {}
    fit = kanoclip.train.fit
    def keep(run, *a, **kw):                                          # the run's model and cache, for the checks
        seen.update(model=run.model, cache=run.cache, keys=run.keys)
        return fit(run, *a, **kw)
    monkeypatch.setattr(kanoclip.train, "fit", keep)
    assert main(["train", "--data", str(aux), "--out", str(run), "--pretrained", str(scripted), "--epochs", "1",
                 "--batch-size", "2", "--cache", "memory", "--compile", "off", *cpu]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    size = _size(cache_bytes(2, 4, GRID, DIM, 518))                     # fp32 on the CPU (fp16 on CUDA)
    assert f"feature cache: {size} in memory (2 images x 4 stages x 37 x 37 patches x 768 dims, float32)" in out
    doc = json.loads((run / "config.json").read_text())
    assert (doc["model"]["backbone"], doc["model"]["image_size"]) == (DEFAULT_BACKBONE, 518)   # the defaults
    losses = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 1 and all(math.isfinite(losses[0][k]) for k in ("kd", "glob", "local", "total"))

    model, cache = seen["model"], seen["cache"]
    assert model.backbone.grid == GRID and list(model.encoder.layers) == LAYERS and model.backbone.embed_dim == DIM
    assert cache.misses == 2 and cache.hits == 2                      # encoded once, then read by the step
    entry, _, _ = cache.get(seen["keys"][0])
    assert entry["patches"].shape == (4, 37 * 37, DIM) and entry["glob"].shape == (DIM,) and entry["mask"].shape == (518, 518)
    ref = torch.load(plain, mmap=True, weights_only=True)             # the file's weights: CLIP did not change
    got = model.clip.state_dict()
    for k, v in ref.items():
        if k == "visual.positional_embedding":                        # resized from 24 x 24 to 37 x 37 patches
            assert got[k].shape == (1 + 37 * 37, 1024) and torch.equal(got[k][0], v[0].float())
        else: assert torch.equal(got[k], v.float()), k
    del model, cache, seen, got, ref; gc.collect()

    shapes = []
    predict = KAnoCLIP.predict
    def spy(self, x, c, amp=False):                                   # input and map sizes of every batch
        s, m = predict(self, x, c, amp)
        shapes.append((tuple(x.shape), tuple(m.shape)))
        return s, m
    monkeypatch.setattr(KAnoCLIP, "predict", spy)
    assert main(["test", "--checkpoint", str(run), "--data", str(target), "--out", str(res), "--pretrained", str(plain),
                 *cpu]) == 0, capsys.readouterr().err
    m = json.loads((res / "metrics.json").read_text())
    assert m["classes"]["ring"]["n_images"] == 2 and 0 <= m["classes"]["ring"]["pixel_auroc"] <= 1
    # one batch for the metrics; the figure is drawn from the maps kept for them (a class with masks keeps them all)
    assert shapes == [((2, 3, 518, 518), (2, 518, 518))] and (res / "figures" / "ring.png").is_file()
    figure = np.asarray(Image.open(res / "figures" / "ring.png").convert("L"), dtype=float)
    assert figure.std() > 10                                          # decoded, and not a blank canvas

    gc.collect()
    img = sorted((target / "ring" / "test").rglob("*.png"))[0]
    assert main(["predict", "--checkpoint", str(run), str(img), "--out", str(pred), "--class-name", "ring",
                 "--pretrained", str(scripted), *cpu]) == 0, capsys.readouterr().err
    preds = json.loads((pred / "predictions.json").read_text())
    assert len(preds) == 1 and 0 <= preds[0]["score"] <= 1 and shapes[-1] == ((1, 3, 518, 518), (1, 518, 518))
    assert Image.open(preds[0]["map"]).size == (96, 96)               # the map at the image's own size
