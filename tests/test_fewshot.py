"Few-shot memory banks on the real MVTec AD bottle split: where references may come from, and that they find real defects."
import numpy as np
import pytest
import torch
from PIL import Image

from kanoclip.data import prepare_dataset, write_meta
from kanoclip.fewshot import FewShotDetector, compare_shots
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)                     # the untrained prompts and heads; the backbone has its own seed
    return KAnoCLIP(KAnoCLIPConfig.tiny()).eval()


def bottle_copy(bottle_root, root, n_references: int = 0):
    "A writable dataset root linking the read-only bottle split; the first `n_references` normal test images moved to train."
    root.mkdir()
    (root / "bottle").symlink_to(bottle_root / "bottle")
    meta = prepare_dataset("mvtec", root, write=False)
    good = [s for s in meta["test"]["bottle"] if not s["anomaly"]][:n_references]
    meta["train"]["bottle"] = good
    meta["test"]["bottle"] = [s for s in meta["test"]["bottle"] if s not in good]
    write_meta(meta, root)
    return root, [s["img_path"] for s in good]


def test_bottle_test_split_has_no_references(bottle_root, tmp_path, model):
    root, _ = bottle_copy(bottle_root, tmp_path / "mvtec")
    with pytest.raises(ValueError, match="lists no normal training images of class 'bottle'"):
        FewShotDetector.from_dataset(model, root, 1)


def test_references_of_another_product_are_refused(bottle_root, tmp_path, model):
    root, _ = bottle_copy(bottle_root, tmp_path / "mvtec")
    refs = tmp_path / "refs" / "bottle"; refs.mkdir(parents=True)
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(refs / "other.png")
    with pytest.raises(ValueError, match=r"refs/bottle/other.png of class 'bottle' is 128x128 pixels, the images it is compared with are 900x900"):
        FewShotDetector.from_dataset(model, root, 1, reference_root=tmp_path / "refs")


def test_references_find_real_defects(bottle_root, tmp_path, model):
    "Four normal bottles as references: even with random CLIP features the few-shot map finds the real defects."
    root, train = bottle_copy(bottle_root, tmp_path / "mvtec", n_references=5)
    rows = {r["shots"]: r for r in compare_shots(model, root, shots=(0, 4), seed=0)}
    assert set(rows[4]["references"]) <= set(train) and len(rows[4]["references"]) == 4
    assert rows[0]["pixel_auroc"] < 0.5                   # the untrained zero-shot map is worse than chance here
    assert rows[4]["fewshot_pixel_auroc"] > 0.7 and rows[4]["fewshot_image_auroc"] > 0.55
    assert rows[4]["image_auroc"] > rows[0]["image_auroc"] + 0.05


def test_check_disjoint_hashes_each_file_once(tmp_path, monkeypatch):
    "30 references against 40 evaluated files of the same length: 70 hashes at most, not one per pair."
    import kanoclip.fewshot as fs
    (tmp_path / "ev").mkdir(); (tmp_path / "refs").mkdir()
    for i in range(40): (tmp_path / "ev" / f"{i}.png").write_bytes(b"e%03d" % i)
    for i in range(30): (tmp_path / "refs" / f"{i}.png").write_bytes(b"r%03d" % i)
    hashed, digest = [], fs._digest
    monkeypatch.setattr(fs, "_digest", lambda p: hashed.append(p) or digest(p))
    evaluated = sorted((tmp_path / "ev").iterdir())
    fs.check_disjoint(tmp_path / "refs", [f"{i}.png" for i in range(30)], evaluated, "c")
    assert len(hashed) <= 30 + 40 and len(set(hashed)) == len(hashed), len(hashed)
    (tmp_path / "refs" / "7.png").write_bytes(b"e012")                       # a copy of an evaluated file is still found
    with pytest.raises(ValueError, match=r"refs/7.png of class 'c' is a copy of .*ev/12.png"):
        fs.check_disjoint(tmp_path / "refs", [f"{i}.png" for i in range(30)], evaluated, "c")
