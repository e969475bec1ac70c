"""Real data, bad data: nothing is mislabelled, a place that cannot be written fails before the expensive part, and
results of two runs never mix. One section per case of the issue (4-12), on the magnetic-tile layout (masks beside
their images) generated with broken files mixed in, and on the real MVTec AD bottle split where it is there.

The checkpoint most tests use is a tiny model with perturbed heads at 112 px, saved without training; the cases that
are about training train the tiny model for an epoch or two on 8 generated images."""
import json
import os
import re
import shutil
import tracemalloc
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import kanoclip.data
import kanoclip.train
from conftest import one_line_error, read_only, run_cli as run
from kanoclip.data import load_meta, prepare_dataset, write_meta
from kanoclip.evaluate import evaluate
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
from kanoclip.synthetic import make_synthetic
from kanoclip.train import TrainConfig, train
from replicas import mtd_replica, save, texture

SIZE = 112
TILES = ("--dataset", "folder", "--normal-dir", "MT_Free/Imgs", "--abnormal-dir", "MT_Crack/Imgs", "--mask-dir", "MT_Crack/Imgs")


def files_below(folder) -> dict:
    "Relative path -> bytes of every file below `folder`."
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def not_called(what):
    "A stand-in for an expensive function that must not run."
    def boom(*a, **k): raise AssertionError(f"{what} ran before the output was checked")
    return boom


@pytest.fixture(scope="module")
def aux(tmp_path_factory) -> Path:
    "8 generated training images (4 anomalous, with masks) of two categories."
    return make_synthetic(tmp_path_factory.mktemp("aux") / "aux", classes=["disc", "woven"], n_train=0, n_normal=2,
                          n_anomalous=2, size=64, seed=3)


def tiles(root, **kw) -> Path:
    "The magnetic-tile layout (MT_<Defect>/Imgs/*.jpg, each mask a .png beside its image), prepared as a folder dataset."
    mtd_replica(root, **({"n_free": 4, "n_defect": 3, "empty": ()} | kw))
    prepare_dataset("folder", root, normal_dir="MT_Free/Imgs", abnormal_dir="MT_Crack/Imgs", mask_dir="MT_Crack/Imgs")
    return root


@pytest.fixture(scope="module")
def mtd(tmp_path_factory) -> Path:
    return tiles(tmp_path_factory.mktemp("mtd") / "mtd")


# --- 4. test and train --skip-bad, the files left out listed -------------------------------------------------------

def test_test_skip_bad_lists_the_images_left_out(capsys, tmp_path, checkpoint):
    "A tile cut short after `prepare` (a copy that did not finish): `test` stops naming it, `--skip-bad` leaves it out."
    data = tiles(tmp_path / "mtd")
    cut = data / load_meta(data)["test"]["mtd"][0]["img_path"]
    cut.write_bytes(cut.read_bytes()[:300])
    args = ("test", "--checkpoint", checkpoint, "--data", data, "--device", "cpu", "--no-figures")
    one_line_error(capsys, *args, "--out", tmp_path / "r1", says=[str(cut), "(pass --skip-bad to leave unusable samples out"])
    assert not (tmp_path / "r1").exists()                     # nothing half-written
    code, out, err = run(capsys, *args, "--out", tmp_path / "r2", "--skip-bad")
    assert code == 0, err
    assert f"left out 1 test image with unusable files:\n  cannot read image file {cut}" in out
    m = json.loads((tmp_path / "r2" / "metrics.json").read_text())
    assert m["classes"]["mtd"]["n_images"] == 6
    assert [s["img_path"] for s in m["skipped"]] == [cut.relative_to(data).as_posix()]


def test_test_skip_bad_on_the_real_bottle_split(capsys, tmp_path, checkpoint, bottle_root):
    "The real bottle split, linked file by file, with one anomalous image replaced by a truncated copy."
    src = bottle_root / "bottle"
    for f in src.rglob("*.png"):
        dst = tmp_path / "mvtec" / "bottle" / f.relative_to(src); dst.parent.mkdir(parents=True, exist_ok=True); dst.symlink_to(f)
    prepare_dataset("mvtec", tmp_path / "mvtec")
    cut = tmp_path / "mvtec/bottle/test/contamination/000.png"
    data = cut.resolve().read_bytes(); cut.unlink(); cut.write_bytes(data[:len(data) // 3])
    code, out, err = run(capsys, "test", "--checkpoint", checkpoint, "--data", tmp_path / "mvtec", "--out", tmp_path / "r",
                         "--device", "cpu", "--no-figures", "--skip-bad", "--batch-size", "16")
    assert code == 0, err
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["classes"]["bottle"]["n_images"] == 82 and m["skipped"][0]["img_path"] == "bottle/test/contamination/000.png"
    assert "left out 1 test image with unusable files:" in out and str(cut) in out


def test_train_skip_bad_lists_the_samples_left_out(capsys, tmp_path, aux):
    data = tmp_path / "aux"; shutil.copytree(aux, data)
    bad = data / load_meta(data)["test"]["disc"][0]["img_path"]
    bad.write_bytes(b"not an image")
    code, out, err = run(capsys, "train", "--data", data, "--out", tmp_path / "run", "--backbone", "kanoclip-tiny",
                         "--image-size", SIZE, "--epochs", 1, "--batch-size", 4, "--device", "cpu", "--skip-bad")
    assert code == 0, err
    assert f"left out 1 sample with unusable files:\n  cannot read image file {bad}" in out
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["train"]["skip_bad"] is True and [p for p, _ in doc["skipped"]] == [str(bad)]


# --- 5. every command checks that it can write its outputs before any model, data or network work ------------------

def test_test_into_a_read_only_folder_fails_before_the_model_loads(capsys, tmp_path, checkpoint, mtd, monkeypatch):
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(KAnoCLIP, "from_checkpoint", not_called("loading the model"))
    with read_only(tmp_path / "results"):
        one_line_error(capsys, "test", "--checkpoint", checkpoint, "--data", mtd, "--out", tmp_path / "results",
                       "--device", "cpu", says=["kanoclip test: error: --out: cannot write into", "is not writable"])


def test_predict_into_a_read_only_folder_fails_before_the_model_loads(capsys, tmp_path, checkpoint, mtd, monkeypatch):
    monkeypatch.setattr(KAnoCLIP, "from_checkpoint", not_called("loading the model"))
    (tmp_path / "shared").mkdir()
    with read_only(tmp_path / "shared"):
        one_line_error(capsys, "predict", "--checkpoint", checkpoint, mtd / "MT_Free", "--out", tmp_path / "shared" / "pred",
                       "--device", "cpu", says=["kanoclip predict: error: --out:", "is not writable"])


def test_train_into_a_read_only_folder_fails_before_the_run_is_built(capsys, tmp_path, aux, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.setattr(kanoclip.train, "make_run", not_called("building the run"))
    with read_only(tmp_path / "runs"):
        one_line_error(capsys, "train", "--data", aux, "--out", tmp_path / "runs" / "r", "--backbone", "kanoclip-tiny",
                       "--pretrained", "none", says=["kanoclip train: error: --out:", "is not writable"])


def test_prepare_a_read_only_dataset_fails_before_it_is_scanned(capsys, tmp_path, monkeypatch):
    mtd_replica(tmp_path / "mtd", n_free=2, n_defect=2, empty=())
    monkeypatch.setattr(kanoclip.data, "check_dataset", not_called("decoding every file"))
    with read_only(tmp_path / "mtd"):
        one_line_error(capsys, "prepare", "--root", tmp_path / "mtd", *TILES,
                       says=["kanoclip prepare: error: --root:", "copy the dataset to a folder you can write to"])


def test_knowledge_into_a_read_only_folder_sends_no_request(capsys, tmp_path):
    from test_knowledge_client import FIVE, Server, ok
    srv = Server(lambda i, body: ok("\n".join(FIVE)))
    try:
        (tmp_path / "kb").mkdir()
        with read_only(tmp_path / "kb"):
            one_line_error(capsys, "knowledge", "--classes", "bottle", "--out", tmp_path / "kb" / "kb.json", "--llm-url", srv.url,
                           "--llm-model", "test-model", says=["kanoclip knowledge: error: --out:", "is not writable"])
        assert srv.requests == []                              # no (paid) request was sent
    finally: srv.close()


def test_demo_into_a_read_only_folder_fails_before_generating(capsys, tmp_path, monkeypatch):
    import kanoclip.synthetic
    monkeypatch.setattr(kanoclip.synthetic, "make_synthetic_split", not_called("generating data"))
    (tmp_path / "d").mkdir()
    with read_only(tmp_path / "d"):
        one_line_error(capsys, "demo", "--out", tmp_path / "d" / "demo", "--device", "cpu", says="--out:")


# --- 6. a result folder describes exactly one run; output names follow the inputs' relative paths -----------------

def test_test_into_a_used_folder_replaces_it_whole(capsys, tmp_path, checkpoint, mtd):
    args = ("test", "--checkpoint", checkpoint, "--data", mtd, "--out", tmp_path / "res", "--device", "cpu")
    assert run(capsys, *args)[0] == 0 and (tmp_path / "res" / "figures" / "mtd.png").is_file()
    first = files_below(tmp_path / "res")
    one_line_error(capsys, *args, "--no-figures", says=f"--out: {tmp_path / 'res'} is not empty (3 entries): choose a new folder, "
                   "or pass --overwrite to replace the earlier results in it")
    assert files_below(tmp_path / "res") == first
    assert run(capsys, *args, "--no-figures", "--overwrite")[0] == 0
    assert sorted(files_below(tmp_path / "res")) == ["metrics.json", "metrics.md"]     # the old figure is gone
    assert [p.name for p in tmp_path.iterdir()] == ["res"]                          # nothing left beside it


def test_interrupted_evaluation_leaves_the_earlier_results(tmp_path, checkpoint, mtd, monkeypatch):
    model = KAnoCLIP.from_checkpoint(checkpoint)
    evaluate(model, mtd, tmp_path / "res", progress=False)
    first = files_below(tmp_path / "res")
    calls, predict = [], model.predict
    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2: raise KeyboardInterrupt
        return predict(*a, **k)
    monkeypatch.setattr(model, "predict", interrupted)
    with pytest.raises(KeyboardInterrupt): evaluate(model, mtd, tmp_path / "res", batch_size=4, overwrite=True, progress=False)
    assert files_below(tmp_path / "res") == first and [p.name for p in tmp_path.iterdir()] == ["res"]


def test_predict_into_a_used_folder(capsys, tmp_path, checkpoint, mtd):
    args = ("predict", "--checkpoint", checkpoint, "--device", "cpu", "--out", tmp_path / "pred")
    assert run(capsys, *args, mtd / "MT_Free")[0] == 0
    first, cracks = files_below(tmp_path / "pred"), sorted((mtd / "MT_Crack" / "Imgs").glob("*.jpg"))
    one_line_error(capsys, *args, *cracks, says="--overwrite")
    assert files_below(tmp_path / "pred") == first
    assert run(capsys, *args, *cracks, "--overwrite")[0] == 0
    preds = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    maps = sorted(Path(p["map"]).relative_to(tmp_path / "pred").as_posix() for p in preds)
    assert sorted(f for f in files_below(tmp_path / "pred") if f.startswith("maps/")) == maps     # only this run's maps
    assert len(maps) == 3 and all(Path(p["image"]).parent.name == "Imgs" for p in preds)


def test_output_names_follow_the_inputs_relative_paths(capsys, tmp_path, checkpoint):
    for sub in ("a", "b", "c/d"): save(texture((40, 30)), tmp_path / "in" / sub / "x.png")
    save(texture((40, 30), 1), tmp_path / "more" / "a" / "x.png")          # the same relative path as in/a/x.png
    save(texture((40, 30), 2), tmp_path / "single.png")
    assert run(capsys, "predict", "--checkpoint", checkpoint, tmp_path / "in", tmp_path / "more", tmp_path / "single.png",
               "--out", tmp_path / "pred", "--device", "cpu")[0] == 0
    preds = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    got = {Path(p["image"]).relative_to(tmp_path).as_posix(): Path(p["map"]).relative_to(tmp_path / "pred").as_posix() for p in preds}
    assert got == {"in/a/x.png": "maps/a/x.png", "in/b/x.png": "maps/b/x.png", "in/c/d/x.png": "maps/c/d/x.png",
                   "more/a/x.png": "maps/a/x_2.png", "single.png": "maps/single.png"}
    assert all((tmp_path / "pred" / m).is_file() and (tmp_path / "pred" / m.replace("maps/", "overlays/", 1)).is_file() for m in got.values())


def test_inputs_and_outputs_given_as_relative_paths(capsys, tmp_path, checkpoint, mtd, monkeypatch):
    "Reading is not writing: relative inputs are read from the working directory, and the paths recorded work from there."
    shutil.copytree(mtd, tmp_path / "mtd"); shutil.copytree(checkpoint, tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "test", "--checkpoint", "ckpt", "--data", "mtd", "--out", "res", "--device", "cpu", "--no-figures")[0] == 0
    assert run(capsys, "predict", "--checkpoint", "ckpt", "mtd/MT_Free", "--out", "out/pred", "--device", "cpu")[0] == 0
    preds = json.loads(Path("out/pred/predictions.json").read_text())
    assert all(not Path(p["image"]).is_absolute() and Path(p["map"]).is_file() for p in preds)
    assert Path("res/metrics.json").is_file()


# --- 7. files get the mode of the user's umask; one atomic writer -----------------------------------------------

@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def modes(folder) -> set:
    "The distinct (kind, mode) of everything below `folder`, and of `folder` itself."
    return {("dir" if p.is_dir() else "file", oct(p.stat().st_mode & 0o777)) for p in [Path(folder), *Path(folder).rglob("*")]}


def test_everything_written_has_the_mode_of_the_umask(capsys, tmp_path, aux, mtd, umask_027):
    from kanoclip.knowledge import builtin_knowledge, save_knowledge
    want = {("dir", "0o750"), ("file", "0o640")}
    model = perturb_(KAnoCLIP(KAnoCLIPConfig.tiny(image_size=SIZE)), std=0.05)
    model.save(tmp_path / "ckpt")
    assert modes(tmp_path / "ckpt") == want
    save_knowledge(builtin_knowledge(), tmp_path / "kb" / "kb.json")
    assert modes(tmp_path / "kb") == want
    data = tmp_path / "mtd"; shutil.copytree(mtd, data); (data / "meta.json").unlink()
    assert run(capsys, "prepare", "--root", data, *TILES)[0] == 0
    assert oct((data / "meta.json").stat().st_mode & 0o777) == "0o640"
    train(KAnoCLIPConfig.tiny(image_size=SIZE), TrainConfig(epochs=1, batch_size=4, device="cpu", cache="disk"), [aux],
          tmp_path / "run", progress=False)
    assert modes(tmp_path / "run") == want and len(list((tmp_path / "run").rglob("*.safetensors"))) == 8 + 2
    for cmd in (("test", "--data", data, "--out", tmp_path / "res"), ("predict", data / "MT_Free", "--out", tmp_path / "pred")):
        assert run(capsys, cmd[0], "--checkpoint", tmp_path / "ckpt", *cmd[1:], "--device", "cpu")[0] == 0
    assert modes(tmp_path / "res") == want and modes(tmp_path / "pred") == want


def test_one_atomic_writer():
    "Only kanoclip.files creates temporary files and renames them into place."
    pkg = Path(kanoclip.data.__file__).parent
    writers = {p.name for p in pkg.glob("*.py") if re.search(r"mkstemp\(|os\.replace\(|os\.rename\(", p.read_text())}
    assert writers == {"files.py"}, writers


# --- 8. train --resume with other settings -------------------------------------------------------------------------

def test_resume_with_more_epochs_goes_on(capsys, tmp_path, aux):
    "A 1-epoch run resumed with --epochs 2 trains epoch 2 and ends with the weights of a 2-epoch run started as such."
    tiny = ("--data", aux, "--out", tmp_path / "run", "--device", "cpu")
    code, out, err = run(capsys, "train", *tiny, "--backbone", "kanoclip-tiny", "--image-size", SIZE, "--epochs", 1,
                         "--batch-size", 4, "--lr", 0.002, "--seed", 5)
    assert code == 0, err
    code, out, err = run(capsys, "train", *tiny, "--resume", "--epochs", 2)
    assert code == 0, err
    assert "resuming" in out and "the run was set to 1 epoch; it now goes on to 2" in out and "trained 1 epoch in" in out
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (doc["train"]["epochs"], doc["train"]["lr"], doc["train"]["seed"]) == (2, 0.002, 5)
    assert [json.loads(l)["epoch"] for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2]
    train(KAnoCLIPConfig.tiny(image_size=SIZE), TrainConfig(epochs=2, batch_size=4, lr=0.002, seed=5, device="cpu"), [aux],
          tmp_path / "straight", progress=False)
    a, b = (load_file(str(tmp_path / r / "weights.safetensors")) for r in ("run", "straight"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_a_changed_setting(capsys, tmp_path, aux):
    tiny = ("--data", aux, "--out", tmp_path / "run", "--device", "cpu")
    assert run(capsys, "train", *tiny, "--backbone", "kanoclip-tiny", "--image-size", SIZE, "--epochs", 1, "--batch-size", 4,
               "--lr", 0.002)[0] == 0
    before = files_below(tmp_path / "run")
    one_line_error(capsys, "train", *tiny, "--resume", "--lr", 0.01,
                   says=f"kanoclip train: error: --lr: {tmp_path / 'run'} was trained with lr=0.002; resuming it with lr=0.01")
    one_line_error(capsys, "train", *tiny, "--resume", "--batch-size", 2, says="--batch-size: ")
    one_line_error(capsys, "train", *tiny, "--resume", "--image-size", 224, says="--image-size: ")
    one_line_error(capsys, "train", *tiny, "--resume", "--epochs", 1, "--no-adapter", says="--no-adapter: ")
    assert files_below(tmp_path / "run") == before
    # given nothing (or only what may change), a resume changes nothing, although the run's lr is not the default
    for extra in ((), ("--num-workers", 0, "--cache", "none")):
        code, out, err = run(capsys, "train", *tiny, "--resume", *extra)
        assert code == 0 and "trained 0 epochs" in out, err


# --- 9. the tiny backbone alone ------------------------------------------------------------------------------------

def test_backbone_tiny_alone_trains_and_tests(capsys, tmp_path, aux, mtd):
    code, out, err = run(capsys, "train", "--data", aux, "--out", tmp_path / "run", "--backbone", "kanoclip-tiny",
                         "--epochs", 1, "--device", "cpu")
    assert code == 0, err
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert (model["backbone"], model["pretrained"], model["image_size"], model["n_ctx"]) == ("kanoclip-tiny", None, 224, 4)
    code, out, err = run(capsys, "test", "--checkpoint", tmp_path / "run", "--data", mtd, "--out", tmp_path / "res", "--device", "cpu")
    assert code == 0 and "| mtd " in out, err


def test_help_names_the_tiny_backbone(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and "kanoclip-tiny" in out and "ViT-L-14-336-quickgelu" in out


# --- 10. messages point only to what the command line has -----------------------------------------------------------

def test_messages_name_command_line_options(capsys, tmp_path, aux):
    tiny = ("train", "--data", aux, "--out", tmp_path / "run", "--backbone", "kanoclip-tiny", "--device", "cpu")
    err = one_line_error(capsys, *tiny, "--pretrained", tmp_path / "w.pt", says=["--pretrained:", "no such file"])
    assert "download" not in err and "create_model" not in err
    (tmp_path / "junk.pt").write_bytes(bytes(range(256)) * 16)
    err = one_line_error(capsys, *tiny, "--pretrained", tmp_path / "junk.pt", says=f"cannot read weights file {tmp_path / 'junk.pt'}")
    assert "torch.load" not in err and "weights_only" not in err
    err = one_line_error(capsys, "knowledge", "--classes", "gear", "--out", tmp_path / "kb.json",
                         says="or pass --unknown-classes generic for class-agnostic descriptions")
    assert "unknown_classes" not in err
    assert run(capsys, "knowledge", "--classes", "gear", "--out", tmp_path / "kb.json", "--unknown-classes", "generic")[0] == 0
    mtd_replica(tmp_path / "mtd", n_free=2, n_defect=2, empty=())
    cut = tmp_path / "mtd" / "MT_Free" / "Imgs" / "exp1_num_1001.jpg"
    cut.write_bytes(cut.read_bytes()[:100])
    err = one_line_error(capsys, "prepare", "--root", tmp_path / "mtd", *TILES, says="or pass --skip-bad to index the rest")
    assert "skip_bad" not in err
    with read_only(tmp_path / "mtd"):
        err = one_line_error(capsys, "prepare", "--root", tmp_path / "mtd", *TILES, says="--root:")
    assert "write=False" not in err and "prepare_dataset" not in err


# --- 11. predict says what it skipped; knowledge says it resumes; credentials in a URL ----------------------------

def test_predict_lists_what_it_skipped(capsys, tmp_path, checkpoint):
    d = tmp_path / "inbox"
    for i in range(11): save(texture((48, 40), i), d / f"tile{i:02d}.png")
    (d / "cut.png").write_bytes((d / "tile00.png").read_bytes()[:80])
    (d / "notes.png").write_text("not an image")
    save(texture((1, 1)), d / "dot.png")
    frames = [Image.fromarray(texture((40, 40), k)) for k in range(4)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    code, out, err = run(capsys, "predict", "--checkpoint", checkpoint, d, "--out", tmp_path / "pred", "--device", "cpu")
    assert code == 0, err
    assert f"scored 12 of 15 images (3 skipped); wrote {tmp_path / 'pred' / 'predictions.json'}" in out
    left = out.split("left out 3 images with unusable files:\n", 1)[1].splitlines()[:3]
    assert [l.startswith("  ") for l in left] == [True] * 3, out
    assert str(d / "cut.png") in left[0] and str(d / "dot.png") in left[1] and "1x1 pixels" in left[1] and str(d / "notes.png") in left[2]
    assert f"note: {d / 'anim.gif'} has 4 frames (an animation or a multi-page file): only the first is scored" in out
    assert "Warning" not in err and "warnings.warn" not in err
    assert len(json.loads((tmp_path / "pred" / "predictions.json").read_text())) == 12


def test_knowledge_says_it_resumes(capsys, tmp_path):
    assert run(capsys, "knowledge", "--classes", "bottle", "--out", tmp_path / "kb.json")[0] == 0
    code, out, err = run(capsys, "knowledge", "--classes", "bottle", "cable", "--out", tmp_path / "kb.json")
    assert code == 0, err
    assert f"resuming {tmp_path / 'kb.json'}: 1 classes and 0 images already described, 1 to go" in out


def test_credentials_in_an_endpoint_url_fail_at_once(capsys, tmp_path):
    err = one_line_error(capsys, "knowledge", "--classes", "bottle", "--out", tmp_path / "kb.json",
                         "--llm-url", "https://me:sk-SECRET@127.0.0.1:9/v1", "--llm-model", "m",
                         says=["--llm-url:", "has credentials before '@'", "KANOCLIP_LLM_API_KEY"])
    assert "sk-SECRET" not in err and not (tmp_path / "kb.json").exists()


# --- 12. evaluation keeps only the maps its metrics need -------------------------------------------------------------

def test_evaluation_memory_does_not_grow_with_a_class_without_masks(tmp_path, checkpoint):
    """A class whose anomalous images have no mask (HeadCT, COVID-19): peak memory (numpy, tracemalloc) of evaluating
    16 or 48 images differs by far less than the maps of the 32 extra images (32 x 112 x 112 x 4 bytes = 1.6 MB)."""
    model = KAnoCLIP.from_checkpoint(checkpoint)
    def peak(n):
        root = make_synthetic(tmp_path / f"d{n}", classes=["ring"], n_train=0, n_normal=n // 2, n_anomalous=n // 2, size=64)
        meta = load_meta(root); meta["test"]["ring"] = [dict(s, mask_path="") for s in meta["test"]["ring"]]
        write_meta(meta, root)
        evaluate(model, root, tmp_path / f"warm{n}", figures=False, progress=False)
        tracemalloc.start()
        res = evaluate(model, root, tmp_path / f"r{n}", figures=False, progress=False)
        p = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
        assert res["classes"]["ring"]["pixel_auroc"] is None and res["classes"]["ring"]["image_auroc"] is not None
        return p
    grown, maps = peak(48) - peak(16), 32 * SIZE * SIZE * 4
    assert grown < maps / 8, f"peak grew by {grown} bytes for 32 more images (their maps: {maps})"
