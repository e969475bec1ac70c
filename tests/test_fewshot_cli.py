"""`kanoclip test --shots K` and `kanoclip predict --reference DIR`: references come from normal training images (or
the folder given) and never from the images evaluated, are recorded so that a run repeats exactly, and bad reference
input ends the command with one line, before the model is loaded.

The checkpoint is a tiny model with perturbed heads at 112 px, saved without training; the data are two generated
categories with normal training images, and the real MVTec AD bottle split where it is there."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import one_line_error, run_cli as run
from kanoclip.data import load_meta, prepare_dataset
from kanoclip.evaluate import evaluate
from kanoclip.fewshot import FewShotDetector
from kanoclip.model import KAnoCLIP
from kanoclip.predict import predict_images
from kanoclip.synthetic import make_synthetic



@pytest.fixture
def no_model(monkeypatch):
    "Loading a checkpoint fails the test: what is checked here must be checked before the model loads."
    def boom(*a, **k): raise AssertionError("the model was loaded before the references were checked")
    monkeypatch.setattr(KAnoCLIP, "from_checkpoint", boom)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    "Two generated categories at 96 px: 4 normal training images and 6 test images (3 anomalous) each."
    return make_synthetic(tmp_path_factory.mktemp("syn") / "syn", classes=["gridded", "ring"], n_train=4, n_normal=3,
                          n_anomalous=3, size=96)


def run_test(capsys, checkpoint, data, out, *extra):
    code, stdout, err = run(capsys, "test", "--checkpoint", checkpoint, "--data", data, "--out", out, "--device", "cpu",
                            "--no-figures", *extra)
    assert code == 0, err
    return json.loads((out / "metrics.json").read_text()), (out / "metrics.md").read_text(), stdout


# --- kanoclip test --shots ----------------------------------------------------------------------------------------

def test_shots_come_from_the_training_images_and_are_recorded(capsys, tmp_path, checkpoint, data):
    m, md, out = run_test(capsys, checkpoint, data, tmp_path / "r", "--shots", 2, "--shot-seed", 1)
    meta = load_meta(data)
    assert (m["shots"], m["shot_seed"], m["fewshot_weight"]) == (2, 1, 0.5) and "reference_data" not in m
    assert sorted(m["references"]) == ["gridded", "ring"]
    for c, names in m["references"].items():
        assert len(names) == 2 and len(set(names)) == 2
        assert set(names) <= {s["img_path"] for s in meta["train"][c] if not s["anomaly"]}
        assert not set(names) & {s["img_path"] for s in meta["test"][c]}
    assert md.startswith("# Few-shot results (2 normal reference images per class): syn\n"), md
    assert f"few-shot: 2 normal reference images per class (seed 1) from the training images of {data}" in out
    # the record is enough to repeat the run: the references it lists, encoded again, give the same numbers
    model = KAnoCLIP.from_checkpoint(checkpoint)
    again = evaluate(FewShotDetector.from_references(model, data, m["references"]), data, tmp_path / "py", figures=False, progress=False)
    assert again["classes"] == m["classes"]


def test_same_seed_same_references_same_numbers(capsys, tmp_path, checkpoint, data):
    m1, _, _ = run_test(capsys, checkpoint, data, tmp_path / "a", "--shots", 2, "--shot-seed", 1)
    run_test(capsys, checkpoint, data, tmp_path / "b", "--shots", 2, "--shot-seed", 1)
    assert (tmp_path / "a" / "metrics.json").read_bytes() == (tmp_path / "b" / "metrics.json").read_bytes()
    m3, _, _ = run_test(capsys, checkpoint, data, tmp_path / "c", "--shots", 2, "--shot-seed", 2)
    assert m3["references"] != m1["references"] and m3["classes"] != m1["classes"]


def test_zero_shot_output_is_unchanged(capsys, tmp_path, checkpoint, data):
    "Without --shots nothing about shots is written; --fewshot-weight 0 gives the zero-shot numbers exactly, 1 others."
    zs, md, out = run_test(capsys, checkpoint, data, tmp_path / "zs")
    assert list(zs) == ["dataset", "classes", "mean"] and md.startswith("# Zero-shot results: syn\n") and "few-shot" not in out
    w0, _, _ = run_test(capsys, checkpoint, data, tmp_path / "w0", "--shots", 2, "--fewshot-weight", 0)
    assert w0["fewshot_weight"] == 0 and w0["classes"] == zs["classes"]
    w1, _, _ = run_test(capsys, checkpoint, data, tmp_path / "w1", "--shots", 2, "--fewshot-weight", 1)
    assert w1["fewshot_weight"] == 1 and w1["classes"] != zs["classes"]


def test_references_from_another_folder(capsys, tmp_path, checkpoint, data):
    "--reference-data: one sub-folder of normal images per class; metrics.json says where the paths point."
    refs = tmp_path / "refs"
    for c in ("gridded", "ring"): shutil.copytree(data / c / "train" / "good", refs / c)
    m, _, _ = run_test(capsys, checkpoint, data, tmp_path / "r", "--shots", 3, "--reference-data", refs)
    assert m["reference_data"] == str(refs.resolve()) and m["shot_seed"] == 0
    for c, names in m["references"].items():
        assert len(names) == 3 and all((refs / n).is_file() and n.startswith(f"{c}/") for n in names)


def test_bottle_split_has_no_training_images(capsys, tmp_path, checkpoint, bottle_root, no_model):
    "The real MVTec AD bottle split has no train/good: --shots 1 says so on one line, naming --data and --reference-data."
    root = tmp_path / "mvtec"; root.mkdir()
    (root / "bottle").symlink_to(bottle_root / "bottle")
    prepare_dataset("mvtec", root)
    err = one_line_error(capsys, "test", "--checkpoint", checkpoint, "--data", root, "--out", tmp_path / "r", "--shots", 1,
                         says=[f"kanoclip test: error: --data: {root / 'meta.json'} lists no normal training images of class 'bottle'",
                               "pass --reference-data DIR, a folder with one sub-folder of normal images per class"])
    assert not (tmp_path / "r").exists(), err


@pytest.mark.parametrize("given, says", [
    (("--shot-seed", 1), "--shot-seed only applies with --shots"),
    (("--reference-data", "refs"), "--reference-data only applies with --shots"),
    (("--shots", 0, "--fewshot-weight", 1), "--fewshot-weight only applies with --shots"),
    (("--shots", 5), "--shots: 5 shots asked for class 'gridded', but only 4 normal reference images are available"),
    (("--shots", -1), "argument --shots: expected a whole number >= 0, got '-1'"),
    (("--shots", 1, "--fewshot-weight", 1.5), "argument --fewshot-weight: expected a number in [0, 1], got '1.5'"),
    (("--shots", 1, "--reference-data", "nowhere"), "--reference-data: reference folder nowhere not found"),
])
def test_test_refuses_bad_fewshot_options(capsys, tmp_path, checkpoint, data, no_model, given, says):
    one_line_error(capsys, "test", "--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "r", *given, says=says)


def test_test_refuses_references_of_another_size(capsys, tmp_path, checkpoint, data, no_model):
    refs = tmp_path / "refs"
    for c in ("gridded", "ring"): shutil.copytree(data / c / "train" / "good", refs / c)
    Image.open(refs / "ring" / "000.png").resize((64, 64)).save(refs / "ring" / "000.png")
    one_line_error(capsys, "test", "--checkpoint", checkpoint, "--data", data, "--out", tmp_path / "r", "--shots", 4,
                   "--reference-data", refs, says=f"--reference-data: reference {refs / 'ring' / '000.png'} of class 'ring' "
                                                  "is 64x64 pixels, the images it is compared with are 96x96")


# --- kanoclip predict --reference ---------------------------------------------------------------------------------

def test_predict_with_references(capsys, tmp_path, checkpoint, data):
    "predictions.json keeps its format; references.json lists what was used; the scores are the few-shot detector's."
    inputs, refs = data / "ring" / "test", data / "ring" / "train" / "good"
    code, out, err = run(capsys, "predict", "--checkpoint", checkpoint, inputs, "--class-name", "ring", "--reference", refs,
                         "--shots", 2, "--shot-seed", 3, "--out", tmp_path / "p", "--device", "cpu")
    assert code == 0, err
    rec = json.loads((tmp_path / "p" / "references.json").read_text())
    assert rec == dict(shots=2, shot_seed=3, fewshot_weight=0.5, reference_data=str(refs.resolve()), references=rec["references"])
    names = rec["references"]["ring"]
    assert len(names) == 2 and all((refs / n).is_file() for n in names)
    assert f"few-shot: 2 reference images of 'ring' from {refs}: {', '.join(names)}" in out
    preds = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert len(preds) == 6 and all(set(p) == {"image", "score", "map"} for p in preds)
    model = KAnoCLIP.from_checkpoint(checkpoint)
    det = FewShotDetector.from_references(model, refs, rec["references"])
    again = predict_images(det, [inputs], tmp_path / "py", class_name="ring", progress=False)
    np.testing.assert_allclose([p["score"] for p in preds], [p["score"] for p in again], atol=1e-6)
    zero = predict_images(model, [inputs], tmp_path / "zs", class_name="ring", progress=False)
    assert not np.allclose([p["score"] for p in preds], [p["score"] for p in zero])


def bad_folder(tmp_path, data, case) -> Path:
    "A reference folder that must be refused: empty, with an unreadable file, with an image of another size, or the inputs'."
    d = tmp_path / "refs"
    if case == "overlapping": return data / "ring" / "test" / "good"
    shutil.copytree(data / "ring" / "train" / "good", d)
    if case == "empty":
        shutil.rmtree(d); d.mkdir()
    elif case == "not an image":
        (d / "001.png").write_bytes(b"not a png")
    elif case == "cut short":          # its header reads well; the pixels end half way
        (d / "001.png").write_bytes((d / "001.png").read_bytes()[:600])
    elif case == "another size":
        Image.open(d / "001.png").resize((128, 128)).save(d / "001.png")
    return d


@pytest.mark.parametrize("case, says", [
    ("empty", "--reference: reference folder {d} contains no images"),
    ("not an image", "--reference: cannot read image file {d}/001.png"),
    ("cut short", "--reference: cannot read image file {d}/001.png"),
    ("another size", "--reference: reference {d}/001.png of class 'ring' is 128x128 pixels, the images it is compared with are 96x96"),
    ("overlapping", "--reference: reference {d}/000.png of class 'ring' is also an image to evaluate"),
])
def test_predict_refuses_bad_references(capsys, tmp_path, checkpoint, data, no_model, case, says):
    d = bad_folder(tmp_path, data, case)
    one_line_error(capsys, "predict", "--checkpoint", checkpoint, data / "ring" / "test", "--class-name", "ring",
                   "--reference", d, "--out", tmp_path / "p", says=says.format(d=d))
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("given, says", [
    (("--shots", 2), "--shots only applies with --reference"),
    (("--fewshot-weight", 1), "--fewshot-weight only applies with --reference"),
    (("--reference", "R", "--shot-seed", 1), "--shot-seed only applies with --shots"),
    (("--reference", "R", "--shots", 0), "argument --shots: expected a whole number >= 1, got '0'"),
    (("--reference", "R", "--shots", 9), "--shots: 9 shots asked for class 'ring', but only 4 normal reference images"),
])
def test_predict_refuses_bad_fewshot_options(capsys, tmp_path, checkpoint, data, no_model, given, says):
    given = [data / "ring" / "train" / "good" if g == "R" else g for g in given]
    one_line_error(capsys, "predict", "--checkpoint", checkpoint, data / "ring" / "test", "--class-name", "ring",
                   "--out", tmp_path / "p", *given, says=says)


def test_predict_references_are_in_the_folder_when_it_lands(capsys, tmp_path, checkpoint, data, monkeypatch):
    "references.json is written into the folder being built, before it is put in place: one folder, one whole run."
    import kanoclip.files
    put, at_swap = kanoclip.files._put_in_place, []
    def spy(stage, out):
        at_swap.append(sorted(p.name for p in stage.iterdir())); put(stage, out)
    monkeypatch.setattr(kanoclip.files, "_put_in_place", spy)
    code, out, err = run(capsys, "predict", "--checkpoint", checkpoint, data / "ring" / "test", "--class-name", "ring",
                         "--reference", data / "ring" / "train" / "good", "--out", tmp_path / "p", "--device", "cpu")
    assert code == 0, err
    assert at_swap == [["maps", "overlays", "predictions.json", "references.json"]]
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == at_swap[0]
