"Evaluation (metrics.json, metrics.md, figures) and prediction (predictions.json, maps, overlays) end to end on the tiny model."
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from kanoclip import metrics as M
from kanoclip.data import AnomalyDataset, load_meta, write_meta
from kanoclip.cli import main
from kanoclip.evaluate import METRICS, evaluate, metrics_table
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
from kanoclip.predict import predict_images
from kanoclip.synthetic import make_synthetic

CLASSES = ("ring", "gridded")


@pytest.fixture(scope="module")
def model():
    "Tiny random model, perturbed so Bi-CMCI and the adapter are away from their zero/identity start."
    return perturb_(KAnoCLIP(KAnoCLIPConfig.tiny()), std=0.05).eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("synth") / "toyset", classes=CLASSES, n_train=0,
                          n_normal=3, n_anomalous=3, size=128)


@pytest.fixture(scope="module")
def evaluated(model, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return evaluate(model, data, out, batch_size=4, progress=False), out


def direct(model, root, cls):
    "Scores, labels, maps and masks of one class straight from model.predict on AnomalyDataset tensors."
    bb = model.backbone
    ds = AnomalyDataset(root, image_size=bb.image_size, mean=bb.mean, std=bb.std, classes=[cls])
    b = next(iter(DataLoader(ds, batch_size=len(ds))))
    s, m = model.predict(b["image"], cls)
    return s, b["label"], m, b["mask"] > 0.5, ds


def test_metrics_json_contract_and_values(model, data, evaluated):
    res, out = evaluated
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == res
    assert set(saved) == {"dataset", "classes", "mean"}
    assert saved["dataset"] == "toyset"
    assert sorted(saved["classes"]) == sorted(CLASSES)
    assert set(saved["mean"]) == set(METRICS)
    for cls in CLASSES:
        got = saved["classes"][cls]
        assert set(got) == set(METRICS) | {"n_images"} and got["n_images"] == 6
        s, y, maps, masks, _ = direct(model, data, cls)
        want = dict(image_auroc=M.image_auroc(s, y), image_ap=M.image_ap(s, y), image_f1max=M.image_f1max(s, y),
                    pixel_auroc=M.pixel_auroc(maps, masks), pixel_aupro=M.pixel_aupro(maps, masks),
                    pixel_ap=M.pixel_ap(maps, masks), pixel_f1max=M.pixel_f1max(maps, masks))
        for k in METRICS:
            assert 0 <= got[k] <= 1
            assert got[k] == pytest.approx(want[k], abs=1e-6), (cls, k)
    for k in METRICS:
        assert saved["mean"][k] == pytest.approx(np.mean([saved["classes"][c][k] for c in CLASSES]), abs=1e-12)


def test_metrics_md_is_percent_with_one_decimal(evaluated):
    res, out = evaluated
    md = (out / "metrics.md").read_text()
    assert metrics_table(res) in md
    rows = {r.strip("| ").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")]
            for r in md.splitlines() if r.startswith("|")}
    for name, entry in list(res["classes"].items()) + [("mean", res["mean"])]:
        cells = rows[name][2:]
        assert cells == [f"{100 * entry[k]:.1f}" for k in METRICS]
        assert all(re.fullmatch(r"\d{1,3}\.\d", c) for c in cells)
    assert rows["mean"][1] == "12"


def test_figures_per_class(evaluated):
    _, out = evaluated
    for cls in CLASSES:
        im = Image.open(out / "figures" / f"{cls}.png")
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 300


def test_class_without_anomalies_is_null_and_left_out_of_the_mean(model, data, tmp_path):
    meta = load_meta(data)
    meta["test"]["ring"] = [s for s in meta["test"]["ring"] if not s["anomaly"]]        # ring: normal images only
    meta["test"]["gridded"] = [dict(s, mask_path="") for s in meta["test"]["gridded"]]  # gridded: no masks
    root = tmp_path / "edited"
    root.mkdir()
    for cls in CLASSES: (root / cls).symlink_to(data / cls)
    write_meta(meta, root)
    res = evaluate(model, root, tmp_path / "out", figures=False, progress=False)
    ring, grid = res["classes"]["ring"], res["classes"]["gridded"]
    assert ring["n_images"] == 3 and all(ring[k] is None for k in METRICS)
    assert all(grid[k] is None for k in METRICS if k.startswith("pixel_"))
    assert grid["image_auroc"] is not None
    assert res["mean"]["image_auroc"] == grid["image_auroc"]
    assert all(res["mean"][k] is None for k in METRICS if k.startswith("pixel_"))
    text = (tmp_path / "out" / "metrics.json").read_text()
    assert "NaN" not in text and json.loads(text)["classes"]["ring"]["image_auroc"] is None
    ring_row = next(l for l in (tmp_path / "out" / "metrics.md").read_text().splitlines() if l.startswith("| ring "))
    assert [c.strip() for c in ring_row.strip("|").split("|")][2:] == ["-"] * len(METRICS)
    assert not (tmp_path / "out" / "figures").exists()


def test_evaluate_errors(model, data, tmp_path):
    with pytest.raises(ValueError, match="unknown class 'rign'"):
        evaluate(model, data, tmp_path, classes=["ring", "rign"], progress=False)
    with pytest.raises(FileNotFoundError, match="meta.json not found"):
        evaluate(model, tmp_path / "nowhere", tmp_path, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    write_meta({"train": {"ring": []}, "test": {"ring": []}}, empty)
    with pytest.raises(ValueError, match="no test images"):
        evaluate(model, empty, tmp_path, progress=False)


def _images(folder):
    rng = np.random.default_rng(1)
    rgb = lambda h, w: Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    cases = {"gray.png": rgb(33, 47).convert("L"), "rgba.png": rgb(40, 52).convert("RGBA"),
             "palette.png": rgb(20, 64).convert("P"),
             "deep.png": Image.fromarray((rng.random((30, 50)) * 65535).astype(np.uint16)),
             "photo.jpg": rgb(48, 36), "nested/photo.PNG": rgb(24, 24)}
    for name, im in cases.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        im.save(folder / name)
    assert {Image.open(folder / n).mode for n in cases} == {"L", "RGBA", "P", "I;16", "RGB"}
    return {n: Image.open(folder / n).size for n in cases}


def test_predict_formats_sizes_and_threshold(model, tmp_path):
    sizes = _images(tmp_path / "in")
    preds = predict_images(model, [tmp_path / "in"], tmp_path / "out", class_name="ring", threshold=0.5,
                           batch_size=4, progress=False)
    assert json.loads((tmp_path / "out" / "predictions.json").read_text()) == preds
    assert len(preds) == len(sizes)
    by_name = {p["image"].replace(str(tmp_path / "in") + "/", ""): p for p in preds}
    assert set(by_name) == set(sizes)
    for name, p in by_name.items():
        assert set(p) == {"image", "score", "map", "anomalous"}
        assert 0 <= p["score"] <= 1 and p["anomalous"] == (p["score"] >= 0.5)
        hm = Image.open(p["map"])
        assert hm.mode == "L" and hm.size == sizes[name]
    maps = sorted(str(Path(p["map"]).relative_to(tmp_path / "out" / "maps")) for p in preds)   # the inputs' relative paths
    assert maps == ["deep.png", "gray.png", "nested/photo.png", "palette.png", "photo.png", "rgba.png"]
    assert sorted(str(f.relative_to(tmp_path / "out" / "overlays")) for f in (tmp_path / "out" / "overlays").rglob("*.png")) == maps
    assert "anomalous" not in predict_images(model, [tmp_path / "in" / "gray.png"], tmp_path / "o2", progress=False)[0]


def test_predict_matches_evaluation_scores(model, data, tmp_path):
    s, _, maps, _, ds = direct(model, data, "ring")
    files = [data / x["img_path"] for x in ds.samples[:2]]
    preds = predict_images(model, files, tmp_path, class_name="ring", progress=False)
    assert [p["score"] for p in preds] == pytest.approx(s[:2].tolist(), abs=1e-6)
    hm = np.asarray(Image.open(preds[0]["map"]), np.float32) / 255   # 128 px image, 224 px map: resized back
    small = torch.nn.functional.interpolate(maps[:1, None], size=(128, 128), mode="bilinear", antialias=True)[0, 0]
    assert hm.shape == (128, 128) and np.abs(hm - small.numpy()).mean() < 0.02


def test_predict_exif_orientation(model, tmp_path):
    im = Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 60, 3), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display: the upright image is 30 wide, 60 high
    im.save(tmp_path / "rot.jpg", exif=exif)
    p = predict_images(model, [tmp_path / "rot.jpg"], tmp_path / "out", progress=False)[0]
    assert Image.open(p["map"]).size == (30, 60)


def test_predict_errors(model, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match=re.escape(f"folder {tmp_path / 'empty'} contains no images")):
        predict_images(model, [tmp_path / "empty"], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="readme.txt is not an image file"):
        predict_images(model, [tmp_path / "empty" / "readme.txt"], tmp_path / "out", progress=False)
    with pytest.raises(FileNotFoundError, match="missing.png not found"):
        predict_images(model, [tmp_path / "missing.png"], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="threshold"):
        predict_images(model, [tmp_path / "empty"], tmp_path / "out", threshold=2, progress=False)
    assert not (tmp_path / "out" / "predictions.json").exists()


def test_loader_workers_and_bf16(model, data, evaluated, tmp_path, capsys):
    "Loader processes change nothing; bf16 autocast (here CPU's) stays close to fp32; the CLI passes both through."
    res, _ = evaluated
    assert evaluate(model, data, tmp_path / "w", batch_size=4, progress=False, figures=False, num_workers=2) == res
    amp = evaluate(model, data, tmp_path / "amp", batch_size=4, progress=False, figures=False, amp=True)
    for cls in CLASSES:
        assert amp["classes"][cls]["pixel_auroc"] == pytest.approx(res["classes"][cls]["pixel_auroc"], abs=0.01)
    files = sorted((data / "ring" / "test").rglob("*.png"))[:3]
    p32, p16 = (predict_images(model, files, tmp_path / f"p{a}", class_name="ring", progress=False, amp=a) for a in (False, True))
    assert [p["score"] for p in p16] == pytest.approx([p["score"] for p in p32], abs=1e-2)
    model.save(tmp_path / "run")
    assert main(["test", "--checkpoint", str(tmp_path / "run"), "--data", str(data), "--out", str(tmp_path / "cli"),
                 "--device", "cpu", "--amp", "on", "--num-workers", "2", "--no-figures"]) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text()) == amp
