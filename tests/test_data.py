"Datasets: every layout on a generated replica, bad input, image modes, and the real MVTec AD bottle split."
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kanoclip.data import (DATASETS, AnomalyDataset, load_image, load_mask, load_meta, meta_summary,
                           prepare_dataset)


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


# ---------------------------------------------------------------- MVTec AD / MPDD
def mvtec_replica(root, classes=("bottle", "cable")):
    for c in classes:
        for i in range(3): img(root / f"{c}/train/good/{i:03d}.png")
        for i in range(2): img(root / f"{c}/test/good/{i:03d}.png")
        for d, n in (("broken", 2), ("crack", 1)):
            for i in range(n):
                img(root / f"{c}/test/{d}/{i:03d}.png", color=(200, 0, 0))
                mask(root / f"{c}/ground_truth/{d}/{i:03d}_mask.png")
    (root / "license.txt").write_text("not a class")
    return root


@pytest.mark.parametrize("name", ["mvtec", "mpdd"])
def test_mvtec_layout(tmp_path, name):
    root = mvtec_replica(tmp_path)
    meta = prepare_dataset(name, root)
    assert (root / "meta.json").is_file() and load_meta(root) == meta
    assert list(meta["test"]) == ["bottle", "cable"]
    assert meta_summary(meta)["test"]["cable"] == dict(normal=2, anomalous=3, masks=3)
    assert meta_summary(meta)["train"]["bottle"] == dict(normal=3, anomalous=0, masks=0)
    s = meta["test"]["bottle"][2]
    assert s == dict(img_path="bottle/test/crack/000.png", mask_path="bottle/ground_truth/crack/000_mask.png",
                     cls_name="bottle", specie_name="crack", anomaly=1)
    check_pairs(root, meta)


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


# ---------------------------------------------------------------- VisA
def visa_replica(root, rows_extra=()):
    rows = ["object,split,label,image,mask"]
    for c in ("candle", "pcb1", "macaroni2"):
        for i in range(3):
            p = f"{c}/Data/Images/Normal/{i:03d}.JPG"; img(root / p); rows.append(f"{c},train,normal,{p},")
        for i in range(3, 5):
            p = f"{c}/Data/Images/Normal/{i:03d}.JPG"; img(root / p); rows.append(f"{c},test,normal,{p},")
        for i in range(2):
            p, q = f"{c}/Data/Images/Anomaly/{i:03d}.JPG", f"{c}/Data/Masks/Anomaly/{i:03d}.png"
            img(root / p); mask(root / q); rows.append(f"{c},test,anomaly,{p},{q}")
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    (root / "split_csv/1cls.csv").write_text("\n".join(rows + list(rows_extra)) + "\n")
    return root


def test_visa_layout(tmp_path):
    root = visa_replica(tmp_path)
    meta = prepare_dataset("visa", root)
    assert list(meta["test"]) == ["candle", "macaroni2", "pcb1"]
    for c in meta["test"]:
        assert meta_summary(meta)["test"][c] == dict(normal=2, anomalous=2, masks=2)
        assert meta_summary(meta)["train"][c] == dict(normal=3, anomalous=0, masks=0)
    check_pairs(root, meta)
    assert AnomalyDataset(root, 8)[0]["mask"].sum() == 9


def test_visa_bad(tmp_path):
    with pytest.raises(FileNotFoundError, match="split_csv/1cls.csv not found"): prepare_dataset("visa", tmp_path)
    root = visa_replica(tmp_path, ["pcb1,test,anomaly,pcb1/Data/Images/Anomaly/009.JPG,pcb1/Data/Masks/Anomaly/009.png"])
    with pytest.raises(FileNotFoundError, match=r"1cls.csv line 23: image .*009.JPG not found"): prepare_dataset("visa", root)
    img(root / "pcb1/Data/Images/Anomaly/009.JPG")
    with pytest.raises(FileNotFoundError, match=r"line 23: mask .*009.png of anomalous image"): prepare_dataset("visa", root)
    (root / "split_csv/1cls.csv").write_text("object,split,image\n")
    with pytest.raises(ValueError, match="missing column.*label"): prepare_dataset("visa", root)


# ---------------------------------------------------------------- BTAD
def test_btad_layout(tmp_path):
    for c, ie, me in (("01", "bmp", "png"), ("02", "png", "png"), ("03", "bmp", "bmp")):
        for i in range(4): img(tmp_path / f"{c}/train/ok/{i:04d}.{ie}")
        for i in range(2): img(tmp_path / f"{c}/test/ok/{i:04d}.{ie}")
        for i in range(3):
            img(tmp_path / f"{c}/test/ko/{i:04d}.{ie}"); mask(tmp_path / f"{c}/ground_truth/ko/{i:04d}.{me}")
    meta = prepare_dataset("btad", tmp_path)
    assert list(meta["test"]) == ["01", "02", "03"]
    assert meta_summary(meta)["test"]["01"] == dict(normal=2, anomalous=3, masks=3)
    assert meta_summary(meta)["train"]["03"] == dict(normal=4, anomalous=0, masks=0)
    assert meta["test"]["01"][0]["mask_path"] == "01/ground_truth/ko/0000.png"
    assert {s["specie_name"] for s in flat(meta) if s["anomaly"]} == {"ko"}
    check_pairs(tmp_path, meta)
    (tmp_path / "03/ground_truth/ko/0002.bmp").unlink()
    with pytest.raises(FileNotFoundError, match=r"03/test/ko/0002.bmp: expected .*03/ground_truth/ko/0002"):
        prepare_dataset("btad", tmp_path)


# ---------------------------------------------------------------- KolektorSDD
def test_sdd_layout(tmp_path):
    for k in range(1, 4):
        for p in range(8):
            img(tmp_path / f"kos{k:02d}/Part{p}.jpg", size=(10, 24))
            mask(tmp_path / f"kos{k:02d}/Part{p}_label.bmp", size=(10, 24), box=(2, 5, 6, 9) if p == k else None)
    meta = prepare_dataset("sdd", tmp_path)
    assert list(meta["test"]) == ["electrical_commutator"] and meta["train"]["electrical_commutator"] == []
    assert meta_summary(meta)["test"]["electrical_commutator"] == dict(normal=21, anomalous=3, masks=3)
    assert [s["img_path"] for s in flat(meta) if s["anomaly"]] == ["kos01/Part1.jpg", "kos02/Part2.jpg", "kos03/Part3.jpg"]
    assert all(s["mask_path"] == "" for s in flat(meta) if not s["anomaly"])
    check_pairs(tmp_path, meta)
    assert AnomalyDataset(tmp_path, 24)[1]["mask"].sum() > 0
    (tmp_path / "kos03/Part5_label.bmp").unlink()
    with pytest.raises(FileNotFoundError, match=r"kos03/Part5.jpg: expected .*kos03/Part5_label"): prepare_dataset("sdd", tmp_path)
    with pytest.raises(ValueError, match="no KolektorSDD folders"): prepare_dataset("sdd", tmp_path / "kos01")


# ---------------------------------------------------------------- DAGM
def test_dagm_layout(tmp_path):
    for n in range(1, 11):
        for sub, bad in (("Train", (3, 5)), ("Test", (2,))):
            for i in range(1, 7): img(tmp_path / f"Class{n}/{sub}/{i:04d}.PNG", mode="L", color=120)
            for i in bad: mask(tmp_path / f"Class{n}/{sub}/Label/{i:04d}_label.PNG")
            (tmp_path / f"Class{n}/{sub}/Label/Labels.txt").write_text("ignored\n")
    img(tmp_path / "Class1_def/1.png", mode="L", color=0)                  # defect-only folder of the old release
    meta = prepare_dataset("dagm", tmp_path)
    assert list(meta["test"]) == [f"Class{n}" for n in range(1, 11)]
    assert meta_summary(meta)["test"]["Class7"] == dict(normal=5, anomalous=1, masks=1)
    assert meta_summary(meta)["train"]["Class10"] == dict(normal=4, anomalous=2, masks=2)
    assert meta["test"]["Class1"][1] == dict(img_path="Class1/Test/0002.PNG", mask_path="Class1/Test/Label/0002_label.PNG",
                                             cls_name="Class1", specie_name="", anomaly=1)
    check_pairs(tmp_path, meta)
    x = AnomalyDataset(tmp_path, 8, classes="Class1")[1]
    assert x["label"] == 1 and x["mask"].sum() == 9 and torch.allclose(x["image"][0], x["image"][1], atol=0.2)


# ---------------------------------------------------------------- medical with masks
def medical_replica(root, masks="anomaly_mask", img_sub="img", n_good=3, n_bad=4, ext="png"):
    sub = f"/{img_sub}" if img_sub else ""
    for i in range(5): img(root / f"train/good{sub}/{i:05d}.{ext}", mode="L", color=20)
    for i in range(n_good): img(root / f"test/good{sub}/{i:05d}.{ext}", mode="L", color=20)
    for i in range(n_bad):
        img(root / f"test/Ungood{sub}/{i + 50:05d}.{ext}", mode="L", color=220)
        if masks: mask(root / f"test/Ungood/{masks}/{i + 50:05d}.png")
    (root / "valid/good/img").mkdir(parents=True)
    return root


@pytest.mark.parametrize("name, cls, masks, img_sub", [
    ("brainmri", "brain", "anomaly_mask", "img"),       # MVFA-AD Brain_AD
    ("liverct", "liver", "anomaly_mask", "img"),        # MVFA-AD Liver_AD
    ("resc", "retina", "label", "img"),                 # BMAD RESC
    ("liverct", "liver", "anomaly_mask", ""),           # images directly in test/good
])
def test_medical_layouts(tmp_path, name, cls, masks, img_sub):
    root = medical_replica(tmp_path, masks, img_sub)
    meta = prepare_dataset(name, root)
    assert list(meta["test"]) == [cls]
    assert meta_summary(meta) == {"train": {cls: dict(normal=5, anomalous=0, masks=0)},
                                  "test": {cls: dict(normal=3, anomalous=4, masks=4)}}
    s = meta["test"][cls][0]
    assert s["mask_path"] == f"test/Ungood/{masks}/00050.png" and s["specie_name"] == ""
    check_pairs(root, meta)
    ds = AnomalyDataset(root, 8)
    assert [x["label"] for x in ds] == [1, 1, 1, 1, 0, 0, 0] and ds[0]["mask"].sum() == 9


def test_medical_bad(tmp_path):
    root = medical_replica(tmp_path / "a")
    (root / "test/Ungood/anomaly_mask/00051.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no mask for anomalous image .*Ungood/img/00051.png"):
        prepare_dataset("brainmri", root)
    root = medical_replica(tmp_path / "b", masks=None)
    with pytest.raises(FileNotFoundError, match=r"expected .*test/Ungood/anomaly_mask/00050"): prepare_dataset("resc", root)
    (tmp_path / "c/train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no LiverCT test folder .* expected test/good/img"): prepare_dataset("liverct", tmp_path / "c")


# ---------------------------------------------------------------- medical, classification only
def test_brainmri_kaggle_and_br35h(tmp_path):
    k = tmp_path / "kaggle"
    for i in range(4): img(k / f"brain_tumor_dataset/yes/Y{i}.jpg")
    for i in range(3): img(k / f"brain_tumor_dataset/no/{i} no.jpeg")
    meta = prepare_dataset("brainmri", k)
    assert meta_summary(meta)["test"]["brain"] == dict(normal=3, anomalous=4, masks=0)
    b = tmp_path / "br35h"
    for i in range(5): img(b / f"yes/y{i}.jpg"); img(b / f"no/no{i}.jpg")
    img(b / "pred/pred0.jpg")
    meta = prepare_dataset("br35h", b)
    assert meta_summary(meta)["test"]["brain"] == dict(normal=5, anomalous=5, masks=0)
    assert "pred/pred0.jpg" not in [s["img_path"] for s in flat(meta)]
    x = AnomalyDataset(b, 8)
    assert x[0]["label"] == 0 and not x[9]["has_mask"] and x[9]["label"] == 1 and x[9]["mask"].sum() == 0
    m = prepare_dataset("br35h", medical_replica(tmp_path / "bmad", masks=None))
    assert meta_summary(m)["test"]["brain"] == dict(normal=3, anomalous=4, masks=0)
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no Br35H folders .* expected yes/"): prepare_dataset("br35h", tmp_path / "none")


@pytest.mark.parametrize("layout", ["v4", "v1", "bmad"])
def test_covid19(tmp_path, layout):
    if layout == "v4":
        for k, n in (("COVID", 3), ("Normal", 4), ("Lung_Opacity", 2), ("Viral Pneumonia", 2)):
            for i in range(n):
                img(tmp_path / f"{k}/images/{k}-{i + 1}.png", mode="L", color=40)
                img(tmp_path / f"{k}/masks/{k}-{i + 1}.png", mode="L", color=255)   # lung masks: not anomalies
    elif layout == "v1":
        for k, n in (("COVID-19", 3), ("NORMAL", 4), ("Viral Pneumonia", 2)):
            for i in range(n): img(tmp_path / f"COVID-19 Radiography Database/{k}/{k} ({i + 1}).png", mode="L", color=40)
    else:
        medical_replica(tmp_path, masks=None, n_good=4, n_bad=3)
    meta = prepare_dataset("covid19", tmp_path)
    assert meta_summary(meta)["test"]["chest"] == dict(normal=4, anomalous=3, masks=0)
    assert all("mask" not in s["img_path"] for s in flat(meta))


def test_headct(tmp_path):
    for i in range(10): img(tmp_path / f"head_ct/head_ct/{i:03d}.png", mode="L", color=70)
    (tmp_path / "labels.csv").write_text("id, hemorrhage\n" + "".join(f"{i},{int(i < 4)}\n" for i in range(10)))
    meta = prepare_dataset("headct", tmp_path)
    assert meta_summary(meta)["test"]["head"] == dict(normal=6, anomalous=4, masks=0)
    assert [s["anomaly"] for s in meta["test"]["head"][:5]] == [1, 1, 1, 1, 0]
    assert meta["test"]["head"][3]["img_path"] == "head_ct/head_ct/003.png"
    (tmp_path / "labels.csv").write_text("id, hemorrhage\n12,1\n")
    with pytest.raises(FileNotFoundError, match="labels.csv line 2: image for id 12 not found"): prepare_dataset("headct", tmp_path)
    (tmp_path / "labels.csv").unlink()
    with pytest.raises(FileNotFoundError, match="HeadCT labels .*labels.csv not found"): prepare_dataset("headct", tmp_path)


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
    with pytest.raises(ValueError, match="no images found"):
        prepare_dataset("folder", r, normal_dir="gt/dent", abnormal_dir=None, mask_dir="gt")


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
    mask(tmp_path / "soft.png", value=127)
    assert load_mask(tmp_path / "soft.png").sum() == 0                       # below half range
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
