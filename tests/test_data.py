"The loader and prepare: image and mask encodings, bad files, checks and reports, folder layouts, meta.json from other tools, the real bottle split (each dataset's layouts: test_datasets.py)."
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kanoclip.data import (DATASETS, AnomalyDataset, load_image, load_mask, load_meta, load_pair, meta_summary,
                           prepare_dataset)
import replicas
from replicas import box_mask, mtd_replica, save, texture


# ---------------------------------------------------------------- helpers writing tiny replicas
def img(path, size=(8, 8), color=(90, 90, 90), mode="RGB"):
    "A small solid image at `path` (format from the extension)."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def mask(path, size=(8, 8), box=(2, 2, 5, 5), value=255):
    "A mask with one box of `value` on 0 (box=None: empty mask)."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    m = Image.new("L", size, 0)
    if box is not None: m.paste(value, box)
    m.save(path)
    return path


def flat(meta, split="test"):
    return [s for v in meta[split].values() for s in v]


def check_pairs(root, meta):
    "Every anomalous sample with a mask points at an existing mask whose stem starts with its image's stem."
    for s in flat(meta) + flat(meta, "train"):
        assert (root / s["img_path"]).is_file()
        if s["mask_path"]:
            assert s["anomaly"] == 1 and (root / s["mask_path"]).is_file()
            assert Path(s["mask_path"]).stem.startswith(Path(s["img_path"]).stem)


# ---------------------------------------------------------------- a tiny MVTec AD copy for the loader's tests
def mvtec_replica(root, classes=("bottle", "cable")):
    "MVTec AD's encoding (RGB PNG images, L 0/255 `_mask.png` masks) at 8 x 8; the full replicas are in tests/replicas.py."
    for c in classes:
        for i in range(3): img(root / f"{c}/train/good/{i:03d}.png")
        for i in range(2): img(root / f"{c}/test/good/{i:03d}.png")
        for d, n in (("broken", 2), ("crack", 1)):
            for i in range(n):
                img(root / f"{c}/test/{d}/{i:03d}.png", color=(200, 0, 0))
                mask(root / f"{c}/ground_truth/{d}/{i:03d}_mask.png")
    (root / "license.txt").write_text("not a class")
    return root


def test_mvtec_missing_mask_and_bad_roots(tmp_path):
    root = mvtec_replica(tmp_path / "d")
    (root / "cable/ground_truth/crack/000_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"cable/test/crack/000.png: expected .*ground_truth/crack/000_mask"):
        prepare_dataset("mvtec", root)
    assert not (root / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match="not found"): prepare_dataset("mvtec", tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no MVTec AD class folders under"): prepare_dataset("mvtec", tmp_path / "empty")
    with pytest.raises(ValueError, match="only apply to the .folder. dataset"): prepare_dataset("mvtec", root, normal_dir="x")


def test_write_false_and_atomic_write(tmp_path):
    root = mvtec_replica(tmp_path)
    prepare_dataset("mvtec", root, write=False)
    assert not (root / "meta.json").exists()
    prepare_dataset("mvtec", root)
    prepare_dataset("mvtec", root)                      # overwrite in place
    assert [p.name for p in root.iterdir() if p.name.startswith(".meta")] == []   # no temporary files left
    json.loads((root / "meta.json").read_text())


# ---------------------------------------------------------------- generic folder
def test_folder_layout(tmp_path):
    r = tmp_path / "widget"
    for i in range(4): img(r / f"normal/{i:02d}.jpg")
    for d in ("scratch", "dent"):
        for i in range(2): img(r / f"anomalous/{d}/{i:02d}.png"); mask(r / f"gt/{d}/{i:02d}_mask.png")
    img(r / "anomalous/odd.png"); mask(r / "gt/odd.png")
    meta = prepare_dataset("folder", r, normal_dir="normal", abnormal_dir="anomalous", mask_dir="gt")
    assert list(meta["test"]) == ["widget"]
    assert meta_summary(meta)["test"]["widget"] == dict(normal=4, anomalous=5, masks=5)
    pairs = {s["img_path"]: (s["mask_path"], s["specie_name"]) for s in flat(meta) if s["anomaly"]}
    assert pairs["anomalous/dent/01.png"] == ("gt/dent/01_mask.png", "dent")
    assert pairs["anomalous/odd.png"] == ("gt/odd.png", "")
    check_pairs(r, meta)
    m2 = prepare_dataset("folder", r, normal_dir="normal", abnormal_dir="anomalous", class_name="gadget", write=False)
    assert list(m2["test"]) == ["gadget"] and meta_summary(m2)["test"]["gadget"]["masks"] == 0
    (r / "gt/dent/01_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no mask for anomalous image .*dent/01.png"):
        prepare_dataset("folder", r, normal_dir="normal", abnormal_dir="anomalous", mask_dir="gt")
    with pytest.raises(FileNotFoundError, match="normal_dir .*good not found"): prepare_dataset("folder", r)
    (r / "empty").mkdir()
    with pytest.raises(ValueError, match="normal_dir .*empty holds no images"):
        prepare_dataset("folder", r, normal_dir="empty", abnormal_dir="anomalous")


def test_folder_flat_masks_and_ambiguity(tmp_path):
    img(tmp_path / "good/a.png"); img(tmp_path / "bad/x/001.png"); mask(tmp_path / "masks/001_mask.png")
    meta = prepare_dataset("folder", tmp_path, abnormal_dir="bad", mask_dir="masks", class_name="c")
    assert [s["mask_path"] for s in flat(meta) if s["anomaly"]] == ["masks/001_mask.png"]
    img(tmp_path / "bad/y/001.png")                                       # two images named 001: which mask?
    with pytest.raises(ValueError, match="ambiguous"):
        prepare_dataset("folder", tmp_path, abnormal_dir="bad", mask_dir="masks", class_name="c")


def test_every_dataset_name_is_handled(tmp_path):
    for name in DATASETS:
        with pytest.raises((ValueError, FileNotFoundError)) as e: prepare_dataset(name, tmp_path, write=False)
        assert str(tmp_path) in str(e.value) or name == "folder"


# ---------------------------------------------------------------- meta.json from other tools
def test_anomalyclip_meta_loads_unchanged(tmp_path):
    meta = {"train": {}, "test": {"bottle": [
        {"img_path": "bottle/test/good/000.png", "mask_path": "", "cls_name": "bottle", "specie_name": "good", "anomaly": 0},
        {"img_path": "bottle/test/crack/000.png", "mask_path": "bottle/ground_truth/crack/000_mask.png",
         "cls_name": "bottle", "specie_name": "crack", "anomaly": 1}]}}
    (tmp_path / "meta.json").write_text(json.dumps(meta, indent=4) + "\n")
    assert load_meta(tmp_path) == meta
    img(tmp_path / "bottle/test/good/000.png"); img(tmp_path / "bottle/test/crack/000.png")
    mask(tmp_path / "bottle/ground_truth/crack/000_mask.png")
    ds = AnomalyDataset(tmp_path, image_size=8)
    assert [x["label"] for x in ds] == [0, 1] and ds[1]["mask"].sum() == 9


def test_dagm_style_capitalised_splits_and_absolute_paths(tmp_path):
    p = img(tmp_path / "data/Class1/Test/0001.PNG")
    meta = {"Train": {"Class1": []}, "Test": {"Class1": [
        {"img_path": str(p), "mask_path": "", "cls_name": "Class1", "specie_name": "", "anomaly": 0}]}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    m = load_meta(tmp_path)
    assert list(m) == ["train", "test"]
    assert AnomalyDataset(tmp_path / "elsewhere", 8, meta=m)[0]["img_path"] == str(p)


@pytest.mark.parametrize("sample, msg", [
    ({"mask_path": "", "cls_name": "a", "anomaly": 0}, "missing key 'img_path'"),
    ({"img_path": "a.png", "cls_name": "a", "anomaly": "yes"}, "anomaly must be 0 or 1"),
    ({"img_path": "", "cls_name": "a", "anomaly": 0}, "img_path must be a non-empty string"),
    ("a.png", "a sample must be an object"),
])
def test_bad_meta_names_file_and_sample(tmp_path, sample, msg):
    (tmp_path / "meta.json").write_text(json.dumps({"test": {"a": [sample]}}))
    with pytest.raises(ValueError, match=f"meta.json: split 'test', class 'a', sample 0: {msg}"):
        load_meta(tmp_path)


def test_bad_meta_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json not found"): load_meta(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="meta.json is not valid JSON"): load_meta(tmp_path)
    (tmp_path / "meta.json").write_text("[]")
    with pytest.raises(ValueError, match="meta.json: expected an object"): load_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{"val": {}}')
    with pytest.raises(ValueError, match="no 'train' or 'test' split"): load_meta(tmp_path)


# ---------------------------------------------------------------- image modes
def test_image_modes(tmp_path):
    Image.new("L", (3, 2), 77).save(tmp_path / "l.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "l.png")), np.full((2, 3, 3), 77, np.uint8))

    pal = Image.new("P", (2, 2), 1); pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762); pal.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").getpixel((0, 0)) == (10, 20, 30)
    pal.save(tmp_path / "pt.png", transparency=1)                      # palette with a transparent colour
    assert load_image(tmp_path / "pt.png").getpixel((0, 0)) == (0, 0, 0)

    rgba = Image.new("RGBA", (3, 1), (200, 100, 50, 255))
    rgba.putpixel((1, 0), (200, 100, 50, 0)); rgba.putpixel((2, 0), (200, 100, 50, 128))
    rgba.save(tmp_path / "rgba.png")
    px = [load_image(tmp_path / "rgba.png").getpixel((i, 0)) for i in range(3)]
    assert px[0] == (200, 100, 50) and px[1] == (0, 0, 0)
    assert np.allclose(px[2], np.array([200, 100, 50]) * 128 / 255, atol=1)   # composited on black

    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "r16.png")
    assert Image.open(tmp_path / "r16.png").mode == "I;16"
    out = np.asarray(load_image(tmp_path / "r16.png"))
    assert out.dtype == np.uint8 and np.array_equal(out[..., 1], np.arange(256).reshape(16, 16))
    Image.fromarray(np.array([[0, 1000, 32768, 65535]], np.uint16)).save(tmp_path / "v16.png")
    assert list(np.asarray(load_image(tmp_path / "v16.png"))[0, :, 0]) == [0, 4, 128, 255]   # round(v*255/65535)
    Image.fromarray(np.array([[0, 100, 200, 400]], np.int32)).save(tmp_path / "i32.tif")   # mode I
    assert list(np.asarray(load_image(tmp_path / "i32.tif"))[0, :, 0]) == [0, 0, 1, 2]
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(tmp_path / "f.tif")      # mode F in [0,1]
    assert list(np.asarray(load_image(tmp_path / "f.tif"))[0, :, 0]) == [0, 128, 255]


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_exif_orientation(tmp_path, ext):
    a = np.zeros((32, 64, 3), np.uint8); a[:, :] = (255, 0, 0); a[:16, 32:] = (0, 255, 0)   # green top-right
    exif = Image.Exif(); exif[0x0112] = 6                                                    # rotate 90 cw
    Image.fromarray(a).save(tmp_path / f"o.{ext}", exif=exif, quality=95)
    im = load_image(tmp_path / f"o.{ext}")
    assert im.size == (32, 64)                                       # width, height swapped
    g = np.asarray(im)[60, 28]                                       # bottom-right corner region is green
    assert g[1] > 200 and g[0] < 60


def test_bad_image_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.png not found"): load_image(tmp_path / "gone.png")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ValueError, match="e.png is empty"): load_image(tmp_path / "e.png")
    (tmp_path / "j.jpg").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="cannot read image file .*j.jpg"): load_image(tmp_path / "j.jpg")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "n.png")
    data = (tmp_path / "n.png").read_bytes(); (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read image file .*t.png"): load_image(tmp_path / "t.png")
    with pytest.raises(FileNotFoundError, match="it is a folder"): load_image(tmp_path)


def test_masks(tmp_path):
    mask(tmp_path / "m.png", size=(8, 8), box=(0, 0, 4, 4), value=200)
    m = load_mask(tmp_path / "m.png")
    assert m.dtype == bool and m.sum() == 16
    assert load_mask(tmp_path / "m.png", 4).sum() == 4
    assert load_mask(tmp_path / "m.png", (2, 8)).shape == (2, 8)
    mask(tmp_path / "soft.png", value=3)
    assert load_mask(tmp_path / "soft.png").sum() == 9                       # non-zero is anomalous
    mask(tmp_path / "one.png", value=1)
    assert load_mask(tmp_path / "one.png").sum() == 9                        # 0/1 label mask
    Image.new("1", (4, 4), 1).save(tmp_path / "b.png")
    assert load_mask(tmp_path / "b.png").all()
    Image.new("RGB", (2, 2), (255, 0, 0)).save(tmp_path / "red.bmp")
    assert load_mask(tmp_path / "red.bmp").all()


# ---------------------------------------------------------------- the torch Dataset
def test_dataset_items(tmp_path):
    root = mvtec_replica(tmp_path, classes=("bottle",))
    prepare_dataset("mvtec", root)
    ds = AnomalyDataset(root, image_size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert len(ds) == 5 and [x["label"] for x in ds] == [1, 1, 1, 0, 0]
    x = ds[0]
    assert x["image"].shape == (3, 16, 16) and x["mask"].shape == (16, 16)
    assert torch.allclose(x["image"][:, 5, 5], torch.tensor([200 / 255 * 2 - 1, -1, -1]), atol=1e-6)
    assert set(x["mask"].unique().tolist()) == {0.0, 1.0} and x["mask"].sum() == 36
    assert x["img_path"] == "bottle/test/broken/000.png" and x["specie_name"] == "broken" and x["has_mask"]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["image"].shape == (5, 3, 16, 16) and batch["label"].tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="split 'valid' not in"): AnomalyDataset(root, split="valid")
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD   # the default: CLIP's normalisation
    clip = AnomalyDataset(root, image_size=16)
    assert clip.mean.flatten().tolist() == pytest.approx(OPENAI_DATASET_MEAN) and clip.std.flatten().tolist() == pytest.approx(OPENAI_DATASET_STD)


def test_dataset_bad_files(tmp_path):
    root = mvtec_replica(tmp_path, classes=("bottle",))
    prepare_dataset("mvtec", root)
    (root / "bottle/test/good/001.png").unlink()
    with pytest.raises(FileNotFoundError, match="bottle/test/good/001.png not found"): AnomalyDataset(root)
    (root / "bottle/test/good/001.png").write_bytes(b"")
    with pytest.raises(ValueError, match="001.png is empty"): AnomalyDataset(root)
    (root / "bottle/test/good/001.png").write_bytes(b"corrupt" * 20)
    ds = AnomalyDataset(root, 16)                                           # content is read lazily ...
    with pytest.raises(ValueError, match="cannot read image file .*good/001.png"): ds[4]
    mask(root / "bottle/ground_truth/crack/000_mask.png", size=(8, 9))
    with pytest.raises(ValueError, match=r"mask .*crack/000_mask.png is 8x9 but its image .*crack/000.png is 8x8"):
        ds[2]
    with pytest.warns(UserWarning, match="skipped 2 of 5 samples"):
        ok = AnomalyDataset(root, 16, skip_bad=True)                        # ... or checked up front
    assert len(ok) == 3
    assert [p for p, _ in ok.skipped] == ["bottle/test/crack/000.png", "bottle/test/good/001.png"]
    assert "8x9" in ok.skipped[0][1] and "cannot read" in ok.skipped[1][1]
    for x in ok: pass                                                       # everything left reads


# ---------------------------------------------------------------- real data
def test_real_mvtec_bottle(bottle_root, tmp_path):
    meta = prepare_dataset("mvtec", bottle_root, write=False)              # the shared folder is read-only
    test = meta["test"]["bottle"]
    assert len(test) == 83 and meta["train"]["bottle"] == []
    assert sum(s["anomaly"] == 0 for s in test) == 20
    bad = [s for s in test if s["anomaly"] == 1]
    assert len(bad) == 63 and all(s["mask_path"] for s in bad)
    assert {s["specie_name"] for s in bad} == {"broken_large", "broken_small", "contamination"}
    check_pairs(bottle_root, meta)
    ds = AnomalyDataset(bottle_root, image_size=224, meta=meta)
    i = next(i for i, s in enumerate(ds.samples) if s["anomaly"] == 1)
    x = ds[i]
    assert x["label"] == 1 and x["mask"].sum() > 0 and x["image"].shape == (3, 224, 224)
    assert -2 < x["image"].mean() < 2


# ---------------------------------------------------------------- masks as the datasets store them
def test_visa_class_id_masks_are_not_empty(tmp_path):
    "VisA stores a defect-class number (1, 2, ...) in each anomalous pixel: every such pixel is anomalous."
    root = replicas.visa_replica(tmp_path).root
    a = np.zeros((14, 20), np.uint8); a[1:3, 1:4] = 1; a[5:7, 4:8] = 2; a[9:12, 10:16] = 3   # three defects
    Image.fromarray(a).save(root / "pcb1/Data/Masks/Anomaly/000.png")
    prepare_dataset("visa", root)
    x = next(x for x in AnomalyDataset(root, 14, classes="pcb1") if x["img_path"] == "pcb1/Data/Images/Anomaly/000.JPG")
    want = np.array(Image.fromarray(a > 0).resize((14, 14), Image.NEAREST))
    assert x["label"] == 1 and x["mask"].sum() > 0 and np.array_equal(x["mask"].numpy().astype(bool), want)
    _, rep = prepare_dataset("visa", root, report=True)
    assert rep.empty_masks == [] and rep.stats["test"]["pcb1"]["empty_masks"] == 0


def test_jpeg_masks_are_thresholded_at_half_range(tmp_path):
    m = box_mask((32, 32), (10, 8, 26, 20))
    save(m, tmp_path / "m.jpg", quality=70)
    assert (np.asarray(Image.open(tmp_path / "m.jpg")) > 0).sum() > m.astype(bool).sum()   # compression noise
    assert np.array_equal(load_mask(tmp_path / "m.jpg"), m > 0)


# ---------------------------------------------------------------- EXIF-rotated images keep their masks
@pytest.mark.parametrize("w, h", [(288, 233), (160, 160)])
def test_exif_rotated_image_keeps_its_mask_aligned(tmp_path, w, h):
    "A photo stored sideways (EXIF orientation 6) with a mask written from its stored pixels: both turn upright."
    a = texture((w, h)); a[20:50, 30:90] = 250                                   # bright defect in stored pixels
    exif = Image.Exif(); exif[0x0112] = 6
    save(Image.fromarray(a).convert("RGB"), tmp_path / "defect/x.jpg", exif=exif, quality=95)
    save(box_mask((w, h), (30, 20, 90, 50)), tmp_path / "masks/x.png")
    save(texture((h, w)), tmp_path / "good/y.png")
    prepare_dataset("folder", tmp_path, mask_dir="masks")
    ds = AnomalyDataset(tmp_path, 64, mean=(0, 0, 0), std=(1, 1, 1))
    x = next(x for x in ds if x["label"] == 1)
    bright = x["image"][0] > 0.8                                                 # where the defect is, upright
    assert bright.sum() > 50 and (x["mask"].bool() == bright).float().mean() > 0.97
    im, m = load_pair(tmp_path / "defect/x.jpg", tmp_path / "masks/x.png")
    assert im.size == (h, w) and m.shape == (w, h)


# ---------------------------------------------------------------- prepare checks every file
def test_prepare_reports_every_bad_file_at_once(tmp_path):
    "A truncated JPEG, a text file named .png, a zero-byte file and a wrong-size mask: one error naming all four."
    root = mvtec_replica(tmp_path, classes=("bottle",))
    (root / "bottle/test/good/000.png").unlink()
    save(texture((64, 64)), root / "bottle/test/good/000.jpg")
    data = (root / "bottle/test/good/000.jpg").read_bytes()
    (root / "bottle/test/good/000.jpg").write_bytes(data[: len(data) * 2 // 3])
    (root / "bottle/test/good/001.png").write_text("this is text")
    (root / "bottle/train/good/000.png").write_bytes(b"")
    mask(root / "bottle/ground_truth/crack/000_mask.png", size=(8, 9))
    with pytest.raises(ValueError) as e: prepare_dataset("mvtec", root)
    msg = str(e.value)
    assert msg.startswith("4 of 8 indexed samples have unusable files; meta.json was not written")
    for part in (r"good/000.jpg: OSError: image file is truncated", r"good/001.png: UnidentifiedImageError",
                 r"train/good/000.png is empty", r"crack/000_mask.png is 8x9 but its image .*crack/000.png is 8x8"):
        assert re.search(part, msg), part
    assert not (root / "meta.json").exists()
    with pytest.warns(UserWarning, match="left out 4 samples with unusable files"):
        meta = prepare_dataset("mvtec", root, skip_bad=True)
    assert meta_summary(load_meta(root)) == {"train": {"bottle": dict(normal=2, anomalous=0, masks=0)},
                                             "test": {"bottle": dict(normal=0, anomalous=2, masks=2)}} == meta_summary(meta)


def test_skip_bad_dataset_lists_what_it_left_out(tmp_path):
    "What `test --skip-bad` / `train --skip-bad` need: the good samples, and every bad one with its reason."
    root = mvtec_replica(tmp_path, classes=("bottle",))
    prepare_dataset("mvtec", root)
    data = (root / "bottle/test/broken/001.png").read_bytes()
    (root / "bottle/test/broken/001.png").write_bytes(data[:40])
    (root / "bottle/test/good/000.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 2 of 5 samples"):
        ds = AnomalyDataset(root, 8, skip_bad=True)
    assert len(ds) == 3 and [p for p, _ in ds.skipped] == ["bottle/test/broken/001.png", "bottle/test/good/000.png"]
    assert "cannot read image file" in ds.skipped[0][1] and "is empty" in ds.skipped[1][1]
    assert [x["img_path"] for x in ds] == ["bottle/test/broken/000.png", "bottle/test/crack/000.png", "bottle/test/good/001.png"]


def test_empty_mask_of_an_anomalous_image_is_a_warning_naming_it(tmp_path):
    root = mvtec_replica(tmp_path, classes=("bottle",))
    mask(root / "bottle/ground_truth/crack/000_mask.png", box=None)
    with pytest.warns(UserWarning, match=r"1 anomalous image\(s\) have an empty mask .*bottle/test/crack/000.png "
                                         r"\(mask bottle/ground_truth/crack/000_mask.png\)"):
        prepare_dataset("mvtec", root)
    with pytest.warns(UserWarning, match=r"1 anomalous image\(s\) have an empty mask"):   # with the report too
        _, rep = prepare_dataset("mvtec", root, report=True)
    assert rep.stats["test"]["bottle"] == dict(normal=2, anomalous=3, masks=3, empty_masks=1, mask_area=2 * 9 / 64 / 3, bad=0)


# ---------------------------------------------------------------- folders with masks beside their images
def test_folder_masks_beside_images_magnetic_tiles(tmp_path):
    tiles = mtd_replica(tmp_path / "mtd")
    kw = dict(normal_dir="MT_Free/Imgs", abnormal_dir="MT_Crack/Imgs", mask_dir="MT_Crack/Imgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                      # the empty masks: asserted below
        meta = prepare_dataset("folder", tmp_path / "mtd", write=False, **kw)
    test = meta["test"]["mtd"]
    assert meta_summary(meta)["test"]["mtd"] == dict(normal=6, anomalous=8, masks=8)
    assert all(s["img_path"].endswith(".jpg") for s in test)                  # no mask indexed as an image
    pairs = {s["img_path"]: s["mask_path"] for s in test if s["anomaly"]}
    assert pairs == {im.relative_to(tmp_path / "mtd").as_posix(): mk.relative_to(tmp_path / "mtd").as_posix()
                     for im, mk, _ in tiles["MT_Crack/Imgs"]}
    with pytest.warns(UserWarning, match=r"4 anomalous image\(s\) have an empty mask"):
        meta, rep = prepare_dataset("folder", tmp_path / "mtd", report=True, **kw)
    assert len(rep.empty_masks) == 4 and rep.stats["test"]["mtd"]["empty_masks"] == 4
    boxes = {im.name: box for im, _, box in tiles["MT_Crack/Imgs"]}
    found = {Path(x["img_path"]).name: x["mask"].sum() > 0 for x in AnomalyDataset(tmp_path / "mtd", 32) if x["label"]}
    assert found == {name: box is not None for name, box in boxes.items()}


def test_folder_mask_suffix_beside_images_and_one_sided_sets(tmp_path):
    for i in range(3): img(tmp_path / f"ok/{i}.png")
    for i in range(2): img(tmp_path / f"ng/{i}.bmp"); mask(tmp_path / f"ng/{i}_mask.png")
    meta = prepare_dataset("folder", tmp_path, normal_dir="ok", abnormal_dir="ng", mask_dir="ng")
    assert [(s["img_path"], s["mask_path"]) for s in flat(meta) if s["anomaly"]] == [("ng/0.bmp", "ng/0_mask.png"),
                                                                                     ("ng/1.bmp", "ng/1_mask.png")]
    assert meta_summary(prepare_dataset("folder", tmp_path, normal_dir="ok"))["test"][tmp_path.name] == \
        dict(normal=3, anomalous=0, masks=0)                                # normal-only, on purpose
    assert meta_summary(prepare_dataset("folder", tmp_path, abnormal_dir="ng", mask_dir="ng"))["test"][tmp_path.name] == \
        dict(normal=0, anomalous=2, masks=2)                                # anomalous-only, on purpose
    img(tmp_path / "ng/1.jpg")                                               # 1.bmp, 1.jpg and 1_mask.png
    with pytest.raises(ValueError, match=r"ng/1.jpg has two masks, .*ng/1.bmp and .*ng/1_mask.png"):
        prepare_dataset("folder", tmp_path, abnormal_dir="ng", mask_dir="ng")


@pytest.mark.parametrize("kw, says", [
    (dict(normal_dir="MT_Free/Imgs", abnormal_dir="MT_Free/Imgs"), "are the same folder"),
    (dict(normal_dir="MT_Free/Imgs", abnormal_dir="MT_Free"), "are nested"),
    (dict(normal_dir="MT_Free/Imgs", abnormal_dir="."), "are nested"),
    (dict(normal_dir="MT_Free/Imgs", abnormal_dir=""), "abnormal_dir is empty"),
    (dict(normal_dir="MT_Free/Imgs", abnormal_dir="MT_Void/Imgs"), r"abnormal_dir .*MT_Void/Imgs holds no images"),
    (dict(normal_dir="MT_Free/Imgs", abnormal_dir="MT_Crack/Imgs", mask_dir="MT_Free/Imgs"), "no mask for anomalous image"),
])
def test_folder_layout_mistakes(tmp_path, kw, says):
    mtd_replica(tmp_path, n_defect=2, empty=())
    (tmp_path / "MT_Void/Imgs").mkdir(parents=True)
    with pytest.raises((ValueError, FileNotFoundError), match=says):
        prepare_dataset("folder", tmp_path, **kw)
    assert not (tmp_path / "meta.json").exists()


def test_check_reads_a_jpeg_narrower_than_8_pixels(tmp_path):
    "The 1/8-scale JPEG decode of the check must not reduce a side below one pixel (a 7x40 JPEG is a valid image)."
    save(texture((7, 40)), tmp_path / "good/thin.jpg")
    meta, rep = prepare_dataset("folder", tmp_path, normal_dir="good", report=True, write=False)
    assert rep.bad == [] and meta_summary(meta)["test"][tmp_path.name] == dict(normal=1, anomalous=0, masks=0)
