"Generated data: identical across processes, readable by the data pipeline, split for zero-shot tests."
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from kanoclip.data import AnomalyDataset, load_meta, prepare_dataset
from kanoclip.synthetic import (DEFECTS, SYNTH_CLASSES, SYNTH_TEST_CLASSES, SYNTH_TRAIN_CLASSES, make_synthetic,
                                make_synthetic_split)

ARGS = dict(classes=["grained", "ring"], n_train=1, n_normal=2, n_anomalous=5, size=64, seed=3)


def digest(root) -> dict:
    "SHA-256 of every file under `root` by relative path (meta.json and the record included)."
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_across_processes(tmp_path):
    "Seeds must not depend on Python's per-process hash randomisation: another process writes identical files."
    make_synthetic(tmp_path / "r0", **ARGS)
    code = f"import sys; from kanoclip.synthetic import make_synthetic; make_synthetic(sys.argv[1], **{ARGS!r})"
    hashseed = "4321" if os.environ.get("PYTHONHASHSEED") != "4321" else "1234"   # another hash seed than ours
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "r1")], check=True,
                   env=dict(os.environ, PYTHONHASHSEED=hashseed))
    a, b = digest(tmp_path / "r0"), digest(tmp_path / "r1")
    assert len(a) == 2 * (1 + 2 + 5 + 5) + 2 and a == b


def test_meta_matches_mvtec_reader_and_dataset(tmp_path):
    "meta.json equals what the MVTec reader builds, and every sample loads with a mask iff anomalous."
    root = make_synthetic(tmp_path / "d", classes=["speckled", "disc"], n_train=1, n_normal=2, n_anomalous=5, size=64)
    meta = load_meta(root)
    assert meta == prepare_dataset("mvtec", root, write=False)
    assert {s["specie_name"] for s in meta["test"]["disc"]} == {"", *DEFECTS}
    ds = AnomalyDataset(root, image_size=32)
    labels = [ds[i]["label"] for i in range(len(ds))]
    assert labels == [int(ds[i]["mask"].sum() > 0) for i in range(len(ds))]
    assert sum(labels) == 10 and len(labels) == 14


def test_split_roots_are_disjoint(tmp_path):
    train_root, test_root = make_synthetic_split(tmp_path, seed=1, n_train=1, n_normal=1, n_anomalous=1, size=64)
    tr, te = load_meta(train_root)["test"], load_meta(test_root)["test"]
    assert sorted(tr) == sorted(SYNTH_TRAIN_CLASSES) and sorted(te) == sorted(SYNTH_TEST_CLASSES)
    assert not set(tr) & set(te) and sorted([*tr, *te]) == sorted(SYNTH_CLASSES)
    with pytest.raises(ValueError, match="takes no classes"):
        make_synthetic_split(tmp_path / "x", classes=["disc"])


def test_images_vary_within_a_class(tmp_path):
    "Normal images of one category are all different (position, rotation, colour, noise)."
    from PIL import Image
    root = make_synthetic(tmp_path / "v", classes="plate", n_train=4, n_normal=0, n_anomalous=1, size=64)
    ims = [np.asarray(Image.open(p), dtype=float) for p in sorted((root / "plate" / "train" / "good").glob("*.png"))]
    assert min(np.abs(a - b).mean() for i, a in enumerate(ims) for b in ims[i + 1:]) > 2
