"""The 12 datasets, each on a replica encoded like its real download (tests/replicas.py; formats and sources in
nbs/09_data.ipynb): every variant in circulation is indexed exactly, and every mask decodes to its drawn region."""
import warnings

import numpy as np
import pytest
from PIL import Image

import replicas as R
from kanoclip.data import AnomalyDataset, load_mask, meta_summary, prepare_dataset

VARIANTS = [
    ("mvtec", R.mvtec_replica, {}),
    ("mpdd", R.mvtec_replica, dict(variant="mpdd")),
    ("mpdd", R.mvtec_replica, dict(variant="mpdd-nosuffix")),
    ("visa", R.visa_replica, dict(mask_mode="ids")),
    ("visa", R.visa_replica, dict(mask_mode="ids-P")),
    ("btad", R.btad_replica, {}),
    ("btad", R.btad_replica, dict(encoding="0/1")),
    ("btad", R.btad_replica, dict(variant="anomalib")),
    ("sdd", R.sdd_replica, {}),
    ("sdd", R.sdd_replica, dict(encoding="1bit")),
    ("sdd", R.sdd_replica, dict(encoding="0/1")),
    ("sdd", R.sdd_replica, dict(variant="adaclip")),
    ("sdd", R.sdd_replica, dict(variant="anomalyclip")),
    ("dagm", R.dagm_replica, {}),
    ("dagm", R.dagm_replica, dict(encoding="0/1")),
    ("dagm", R.dagm_replica, dict(variant="adaclip")),
    ("brainmri", R.medical_replica, dict(name="brainmri")),
    ("brainmri", R.medical_replica, dict(name="brainmri", variant="bmad", mode="RGB")),
    ("liverct", R.medical_replica, dict(name="liverct")),
    ("liverct", R.medical_replica, dict(name="liverct", variant="bmad")),
    ("resc", R.medical_replica, dict(name="resc", mode="RGB")),
    ("resc", R.medical_replica, dict(name="resc", variant="bmad")),
    ("brainmri", R.brainmri_kaggle_replica, {}),
    ("brainmri", R.relaid_replica, dict(cls_dir="brain_mri", cls="brain")),
    ("br35h", R.br35h_replica, {}),
    ("br35h", R.relaid_replica, dict(cls_dir="br35h", cls="brain")),
    ("covid19", R.covid_replica, dict(variant="v4")),
    ("covid19", R.covid_replica, dict(variant="v1")),
    ("covid19", R.relaid_replica, dict(cls_dir="covid", cls="chest")),
    ("headct", R.headct_replica, {}),
    ("headct", R.headct_replica, dict(nested=False)),
    ("headct", R.relaid_replica, dict(cls_dir="headct", cls="head")),
]


@pytest.mark.parametrize("name, replica, kw", VARIANTS, ids=[f"{n}-{'-'.join(map(str, k.values())) or 'download'}" for n, _, k in VARIANTS])
def test_every_dataset_variant(tmp_path, name, replica, kw):
    rep = replica(tmp_path, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                    # no empty mask, no bad file
        meta = prepare_dataset(name, tmp_path)
    R.check_replica(rep, meta)
    split = "test"
    ds = AnomalyDataset(tmp_path, 16, split=split)
    with_mask = [(x, rep.truth[split, x["img_path"]][4]) for x in ds if x["has_mask"]]
    for x, region in with_mask:                                          # the loader's mask is the region, resized
        want = np.array(Image.fromarray(region).resize((16, 16), Image.NEAREST))
        assert np.array_equal(x["mask"].numpy().astype(bool), want), x["img_path"]
    assert len(with_mask) == sum(1 for (s, _), t in rep.truth.items() if s == split and t[3])


# ---------------------------------------------------------------- MVTec AD
def test_mvtec_classes_and_missing_mask(tmp_path):
    R.mvtec_replica(tmp_path)
    meta = prepare_dataset("mvtec", tmp_path)
    assert list(meta["test"]) == ["bottle", "grid"]                     # license.txt, readme.txt: not classes
    assert meta_summary(meta)["test"]["grid"] == dict(normal=2, anomalous=3, masks=3)
    (tmp_path / "grid/ground_truth/crack/000_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"grid/test/crack/000.png: expected .*ground_truth/crack/000_mask"):
        prepare_dataset("mvtec", tmp_path)
    with pytest.raises(ValueError, match="single MVTec AD class folder"): prepare_dataset("mvtec", tmp_path / "bottle")


# ---------------------------------------------------------------- VisA
def test_visa_masks_hold_class_numbers(tmp_path):
    "The replica's masks hold 1, 2 and 1+3 on 0, like VisA's: read as the full defect, no mask empty."
    rep = R.visa_replica(tmp_path)
    _, report = prepare_dataset("visa", tmp_path, report=True)
    assert report.empty_masks == []
    for c in ("candle", "capsules", "pcb1"):
        areas = [r.mean() for (s, _), (cls, *_, r) in rep.truth.items() if cls == c and r is not None]
        assert report.stats["test"][c]["mask_area"] == pytest.approx(np.mean(areas)) and np.mean(areas) > 0
    assert set(np.unique(np.asarray(Image.open(tmp_path / "pcb1/Data/Masks/Anomaly/002.png")))) == {0, 1, 3}


def test_visa_bad(tmp_path):
    with pytest.raises(FileNotFoundError, match="split_csv/1cls.csv not found"): prepare_dataset("visa", tmp_path)
    R.visa_replica(tmp_path)
    csv = tmp_path / "split_csv/1cls.csv"
    csv.write_text(csv.read_text() + "pcb1,test,anomaly,pcb1/Data/Images/Anomaly/009.JPG,pcb1/Data/Masks/Anomaly/009.png\n")
    with pytest.raises(FileNotFoundError, match=r"1cls.csv line 23: image .*009.JPG not found"): prepare_dataset("visa", tmp_path)
    R.save(R.texture((20, 14)), tmp_path / "pcb1/Data/Images/Anomaly/009.JPG")
    with pytest.raises(FileNotFoundError, match=r"line 23: mask .*009.png of anomalous image"): prepare_dataset("visa", tmp_path)
    csv.write_text("object,split,image\n")
    with pytest.raises(ValueError, match="missing column.*label"): prepare_dataset("visa", tmp_path)
    (tmp_path / "split_csv/1cls.csv").unlink()
    with pytest.raises(FileNotFoundError, match="VisA_pytorch/1cls copy is MVTec-like: index it with --dataset mvtec"):
        prepare_dataset("visa", tmp_path)


# ---------------------------------------------------------------- BTAD
def test_btad_masks_matched_by_stem_across_extensions(tmp_path):
    R.btad_replica(tmp_path)
    meta = prepare_dataset("btad", tmp_path)
    assert [meta["test"][c][0]["mask_path"] for c in ("01", "02", "03")] == \
        ["01/ground_truth/ko/0000.png", "02/ground_truth/ko/0000.png", "03/ground_truth/ko/0000.bmp"]
    (tmp_path / "03/ground_truth/ko/0001.bmp").unlink()
    with pytest.raises(FileNotFoundError, match=r"03/test/ko/0001.bmp: expected .*03/ground_truth/ko/0001"):
        prepare_dataset("btad", tmp_path)


# ---------------------------------------------------------------- KolektorSDD
def test_sdd_label_decides_the_label(tmp_path):
    R.sdd_replica(tmp_path)
    meta = prepare_dataset("sdd", tmp_path)
    assert meta_summary(meta)["test"]["electrical_commutator"] == dict(normal=9, anomalous=3, masks=3)
    assert Image.open(tmp_path / "kos01/Part0.jpg").mode == "L" and Image.open(tmp_path / "kos01/Part0_label.bmp").format == "BMP"
    (tmp_path / "kos03/Part2_label.bmp").unlink()
    with pytest.raises(FileNotFoundError, match=r"kos03/Part2.jpg: expected .*kos03/Part2_label"): prepare_dataset("sdd", tmp_path)
    with pytest.raises(ValueError, match="no KolektorSDD folders .* or the re-split copy"): prepare_dataset("sdd", tmp_path / "kos01")


# ---------------------------------------------------------------- DAGM
def test_dagm_both_splits_keep_their_defects(tmp_path):
    R.dagm_replica(tmp_path, classes=range(1, 11))
    (tmp_path / "Class1_def").mkdir()                                      # folder of the first release: ignored
    meta = prepare_dataset("dagm", tmp_path)
    assert list(meta["test"]) == [f"Class{n}" for n in range(1, 11)]     # natural order
    assert meta_summary(meta)["train"]["Class10"] == dict(normal=4, anomalous=2, masks=2)
    assert meta["test"]["Class1"][1] == dict(img_path="Class1/Test/0002.PNG", mask_path="Class1/Test/Label/0002_label.PNG",
                                             cls_name="Class1", specie_name="", anomaly=1)


# ---------------------------------------------------------------- medical
def test_medical_bad(tmp_path):
    R.medical_replica(tmp_path / "a")
    (tmp_path / "a/test/Ungood/anomaly_mask/00023_60.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no mask for anomalous image .*Ungood/img/00023_60.png"):
        prepare_dataset("brainmri", tmp_path / "a")
    R.medical_replica(tmp_path / "b", "resc")
    for p in (tmp_path / "b/test/Ungood/anomaly_mask").iterdir(): p.unlink()
    with pytest.raises(FileNotFoundError, match=r"expected .*test/Ungood/anomaly_mask/9_48"): prepare_dataset("resc", tmp_path / "b")
    (tmp_path / "c/train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no LiverCT test folder .* expected test/good/img"): prepare_dataset("liverct", tmp_path / "c")


def test_classification_sets_have_no_masks(tmp_path):
    rep = R.br35h_replica(tmp_path)
    meta = prepare_dataset("br35h", tmp_path)
    assert meta_summary(meta)["test"]["brain"] == dict(normal=3, anomalous=3, masks=0)
    assert not any(s["img_path"].startswith(("pred/", "Br35H-Mask-RCNN/")) for s in meta["test"]["brain"])
    assert {Image.open(tmp_path / p).mode for _, p in rep.truth} == {"RGB", "L", "CMYK"}
    x = [x for x in AnomalyDataset(tmp_path, 8) if x["label"] == 1][0]
    assert not x["has_mask"] and x["mask"].sum() == 0
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no Br35H folders .* expected yes/"): prepare_dataset("br35h", tmp_path / "none")


def test_headct_labels_file(tmp_path):
    R.headct_replica(tmp_path)
    assert (tmp_path / "labels.csv").read_text().startswith("id, hemorrhage\n0,1\n")
    (tmp_path / "labels.csv").write_text("id, hemorrhage\n12,1\n")
    with pytest.raises(FileNotFoundError, match="labels.csv line 2: image for id 12 not found"): prepare_dataset("headct", tmp_path)
    (tmp_path / "labels.csv").unlink()
    with pytest.raises(FileNotFoundError, match="HeadCT labels .*labels.csv not found"): prepare_dataset("headct", tmp_path)


def test_covid_lung_masks_are_not_anomaly_masks(tmp_path):
    R.covid_replica(tmp_path)
    meta = prepare_dataset("covid19", tmp_path)
    assert all("/images/" in s["img_path"] and s["mask_path"] == "" for s in meta["test"]["chest"])
    assert load_mask(tmp_path / "COVID-19_Radiography_Dataset/Normal/masks/Normal-1.png").any()   # lungs, ignored
