"""Training runs that crash: killed mid-epoch, Ctrl-C, a checkpoint write that fails half-way; the feature cache;
`kanoclip train | test | predict` end to end.

One small setting for all: the tiny backbone at 112 px (7 x 7 patches), 24 generated images, batch size 1, so an
epoch is 24 short steps — long enough to stop a run inside its second epoch reliably, cheap enough to run often."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import kanoclip.model
import kanoclip.train
from kanoclip.cli import main
from kanoclip.data import AnomalyDataset
from kanoclip.evaluate import metrics_table
from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
from kanoclip.synthetic import make_synthetic
from kanoclip.train import RESUME_FILE, FeatureCache, TrainConfig, content_key, load_resume, make_optimizer, save_resume, train

SIZE, N_IMAGES, EPOCHS, SEED = 112, 24, 2, 3


def model_config(): return KAnoCLIPConfig.tiny(image_size=SIZE)
def train_config(cache="memory"): return TrainConfig(epochs=EPOCHS, batch_size=1, seed=SEED, device="cpu", cache=cache)


def weights(run) -> dict: return load_file(str(Path(run) / "weights.safetensors"))


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), f"tensor {k} differs"


def log(run) -> list[dict]:
    f = Path(run) / "log.jsonl"
    return [json.loads(l) for l in f.read_text().splitlines()] if f.exists() else []


def no_temp_files(folder):
    "`_atomic_write` temporaries are `.<name>.<random>` in the same folder."
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")] == []


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "24 images (12 anomalous with masks) of two generated categories, 64 px on disk."
    root = make_synthetic(tmp_path_factory.mktemp("train_data") / "aux", classes=["disc", "woven"], n_train=0,
                          n_normal=6, n_anomalous=6, size=64, seed=SEED)
    assert len(AnomalyDataset(root, image_size=SIZE)) == N_IMAGES
    return root


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    "The uninterrupted run every crashed-and-resumed run must reproduce exactly (disk feature cache)."
    run = tmp_path_factory.mktemp("reference") / "run"
    res = train(model_config(), train_config(cache="disk"), [data], run, progress=False)
    return run, res


def test_reference_run(reference):
    run, res = reference
    assert [r["epoch"] for r in res["epochs"]] == [1, 2] and log(run) == res["epochs"]
    # CLIP-VV ran once per image; every later step read the cache
    assert res["cache"] == dict(mode="disk", hits=EPOCHS * N_IMAGES, misses=N_IMAGES)
    assert res["epochs"][1]["total"] < res["epochs"][0]["total"]
    doc = json.loads((run / "config.json").read_text())
    assert doc["train"]["epochs"] == EPOCHS and doc["train"]["batch_size"] == 1 and doc["train"]["seed"] == SEED
    assert doc["model"]["image_size"] == SIZE
    assert no_temp_files(run)


# --- a run stopped inside its second epoch, then resumed -------------------------------------------------------

SCRIPT = """import sys
from kanoclip.model import KAnoCLIPConfig
from kanoclip.train import TrainConfig, train
train(KAnoCLIPConfig.tiny(image_size={size}), TrainConfig(epochs={epochs}, batch_size=1, seed={seed}, device="cpu",
      cache="memory"), [sys.argv[1]], sys.argv[2])
""".format(size=SIZE, epochs=EPOCHS, seed=SEED)


def start_and_stop(data, run, sig, timeout=300) -> str:
    """Start training in a subprocess; once epoch 1's checkpoint is on disk and the progress bar shows at least one
    finished step of epoch 2, send `sig`. Returns the subprocess's stdout and stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # same numerics as this process
    err_file, out_file = run.parent / f"{run.name}.stderr", run.parent / f"{run.name}.stdout"
    with open(err_file, "w") as err, open(out_file, "w") as out:
        p = subprocess.Popen([sys.executable, "-c", SCRIPT, str(data), str(run)], stderr=err, stdout=out, env=env)
    in_epoch_2 = re.compile(rf"epoch 2/{EPOCHS}:[^\r\n]*\|\s*(\d+)/{N_IMAGES}\b")   # tqdm: "| 5/24"
    t0 = time.time()
    try:
        while True:
            assert p.poll() is None, f"training ended before it could be stopped:\n{err_file.read_text()[-2000:]}"
            assert time.time() - t0 < timeout, "training too slow to reach its second epoch"
            steps = [int(m) for m in in_epoch_2.findall(err_file.read_text(errors="replace"))]
            if any(0 < n < N_IMAGES for n in steps) and (run / RESUME_FILE).exists() and len(log(run)) == 1: break
            time.sleep(0.01)
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        if p.poll() is None: p.kill(); p.wait()
    return out_file.read_text() + err_file.read_text(errors="replace")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_resume_after_stop_mid_epoch(data, reference, tmp_path, sig):
    ref_run, ref = reference
    run = tmp_path / "run"
    err = start_and_stop(data, run, sig)
    assert len(log(run)) == 1, "the run was not stopped inside epoch 2"
    assert no_temp_files(run)
    pos = load_resume(run / RESUME_FILE, KAnoCLIP(model_config()), make_optimizer(KAnoCLIP(model_config()), train_config()))
    if sig == signal.SIGKILL:   # nothing saved since the end of epoch 1
        assert (pos["epoch"], pos["batch"]) == (1, 0)
    else:                       # Ctrl-C saved the position inside epoch 2
        assert pos["epoch"] == 1 and 1 <= pos["batch"] < N_IMAGES, pos
        assert "continue with --resume" in err
    KAnoCLIP.from_checkpoint(run)  # what is on disk is a loadable checkpoint
    res = train(model_config(), train_config(), [data], run, resume=True, progress=False)
    assert [r["epoch"] for r in res["epochs"]] == [2]
    assert_same_weights(weights(run), weights(ref_run))
    # the loss terms of epoch 2 match too (exactly, when no batch of epoch 2 is counted twice or missed)
    if sig == signal.SIGKILL:
        drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}
        assert drop(res["epochs"][0]) == drop(ref["epochs"][1])
    assert [r["epoch"] for r in log(run)] == [1, 2]


def test_resume_needs_a_run(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(model_config(), train_config(), [data], tmp_path / "run", resume=True, progress=False)


def test_existing_run_needs_resume(data, reference):
    with pytest.raises(ValueError, match="already holds a training run: resume it"):
        train(model_config(), train_config(), [data], reference[0], progress=False)


# --- a checkpoint write that fails half-way --------------------------------------------------------------------

def failing_save_file(real, fail_on_call=1):
    "A `save_file` that, from call `fail_on_call` on, writes half of the file and then fails like a full disk."
    calls = []
    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        real(tensors, filename, metadata=metadata)
        if len(calls) >= fail_on_call:
            raw = Path(filename).read_bytes()
            Path(filename).write_bytes(raw[:len(raw) // 2])
            raise OSError(28, "No space left on device (simulated)")
    return save_file


def test_interrupted_model_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = perturb_(KAnoCLIP(model_config()), std=0.05, seed=1)
    model.save(tmp_path)
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    perturb_(model, std=0.05, seed=2)
    monkeypatch.setattr(kanoclip.model, "save_file", failing_save_file(kanoclip.model.save_file))
    with pytest.raises(OSError, match="No space left"): model.save(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "weights.safetensors"]  # no temp file left
    assert_same_weights(KAnoCLIP.from_checkpoint(tmp_path).trainable_state_dict(), before)


def test_interrupted_resume_write_keeps_previous_resume_file(tmp_path, monkeypatch):
    model = KAnoCLIP(model_config())
    opt = make_optimizer(model, train_config())
    model.train()
    def step():
        p = next(p for p in model.parameters() if p.requires_grad)
        opt.zero_grad(); (p.float() ** 2).sum().backward(); opt.step()
    step()
    save_resume(tmp_path / RESUME_FILE, model, opt, 1, 0, {})
    before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    step()
    monkeypatch.setattr(kanoclip.train, "save_file", failing_save_file(kanoclip.train.save_file))
    with pytest.raises(OSError, match="No space left"): save_resume(tmp_path / RESUME_FILE, model, opt, 2, 0, {})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [RESUME_FILE]
    fresh = KAnoCLIP(model_config())
    pos = load_resume(tmp_path / RESUME_FILE, fresh, make_optimizer(fresh, train_config()))
    assert (pos["epoch"], pos["batch"]) == (1, 0)
    assert_same_weights(fresh.trainable_state_dict(), before)


@pytest.mark.parametrize("target", ["weights", "resume"])
def test_train_crashing_in_epoch_2_checkpoint_then_resume(data, reference, tmp_path, monkeypatch, target):
    "The checkpoint write of epoch 2 fails half-way: epoch 1's checkpoint is intact and `resume` finishes the run exactly."
    module = kanoclip.model if target == "weights" else kanoclip.train
    monkeypatch.setattr(module, "save_file", failing_save_file(module.save_file, fail_on_call=2))
    run = tmp_path / "run"
    with pytest.raises(OSError, match="No space left"): train(model_config(), train_config(), [data], run, progress=False)
    monkeypatch.undo()
    assert no_temp_files(run)
    fresh = KAnoCLIP(model_config())
    assert load_resume(run / RESUME_FILE, fresh, make_optimizer(fresh, train_config()))["epoch"] == 1
    loaded = KAnoCLIP.from_checkpoint(run).trainable_state_dict()
    if target == "weights": assert_same_weights(loaded, fresh.trainable_state_dict())  # still epoch 1's
    train(model_config(), train_config(), [data], run, resume=True, progress=False)
    assert_same_weights(weights(run), weights(reference[0]))


# --- the feature cache -----------------------------------------------------------------------------------------

def test_feature_cache_invalidated_when_input_size_changes(data, reference, tmp_path):
    import shutil
    folder = shutil.copytree(reference[0] / "feature_cache", tmp_path / "feature_cache")
    model = KAnoCLIP(model_config())
    ds = AnomalyDataset(data, image_size=SIZE, mean=model.backbone.mean, std=model.backbone.std)
    keys = [content_key(data / s["img_path"], s["mask_path"] and data / s["mask_path"]) for s in ds.samples]
    # same encoder: every image written by the run is found, and holds that image's CLIP-VV features
    cache = FeatureCache(model, "disk", folder)
    assert all(k in cache for k in keys) and len(list(cache.dir.iterdir())) == N_IMAGES
    feats, masks, labels, names = cache.batch(keys[:3])
    with torch.no_grad(): f = model.encode(torch.stack([ds[i]["image"] for i in range(3)]))
    torch.testing.assert_close(feats.global_feat, f.global_feat, atol=1e-5, rtol=1e-5)
    for a, b in zip(feats.patches, f.patches): torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert labels.tolist() == [float(ds[i]["label"]) for i in range(3)] and names == [ds[i]["cls_name"] for i in range(3)]
    assert torch.equal(masks, torch.stack([ds[i]["mask"] for i in range(3)]))
    old = cache.dir
    # another input size: nothing is found, and the stale entries are deleted
    bigger = FeatureCache(KAnoCLIP(KAnoCLIPConfig.tiny(image_size=SIZE + 16)), "disk", folder)
    assert bigger.dir != old and not old.exists()
    assert [p.name for p in folder.iterdir()] == [bigger.dir.name]
    assert not any(k in bigger for k in keys)


# --- the command line ------------------------------------------------------------------------------------------

def test_cli_train_test_predict(tmp_path, capsys):
    aux = make_synthetic(tmp_path / "aux", classes=["plate"], n_train=0, n_normal=2, n_anomalous=2, size=64)
    target = make_synthetic(tmp_path / "target", classes=["ring"], n_train=0, n_normal=2, n_anomalous=2, size=64)
    tiny = ["--backbone", "kanoclip-tiny", "--pretrained", "none", "--image-size", str(SIZE), "--device", "cpu"]
    run, res, pred = tmp_path / "run", tmp_path / "results", tmp_path / "pred"
    assert main(["train", "--data", str(aux), "--out", str(run), *tiny, "--n-ctx", "4", "--epochs", "2",
                 "--batch-size", "2", "--cache", "memory", "--seed", "1"]) == 0, capsys.readouterr().err
    assert "trained 2 epochs" in capsys.readouterr().out
    doc = json.loads((run / "config.json").read_text())
    assert doc["model"]["backbone"] == "kanoclip-tiny" and doc["model"]["pretrained"] is None and doc["model"]["n_ctx"] == 4
    assert doc["train"]["epochs"] == 2 and doc["train"]["batch_size"] == 2 and doc["train"]["seed"] == 1
    assert [r["epoch"] for r in log(run)] == [1, 2] and (run / RESUME_FILE).is_file()

    assert main(["test", "--checkpoint", str(run), "--data", str(target), "--out", str(res), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    m = json.loads((res / "metrics.json").read_text())
    assert list(m["classes"]) == ["ring"] and m["classes"]["ring"]["n_images"] == 4
    assert metrics_table(m) in out and metrics_table(m) in (res / "metrics.md").read_text()
    assert (res / "figures" / "ring.png").is_file()

    imgs = target / "ring" / "test"
    assert main(["predict", "--checkpoint", str(run), str(imgs), "--out", str(pred), "--class-name", "ring",
                 "--threshold", "0.5", "--device", "cpu"]) == 0
    assert "scored 4 of 4 images;" in capsys.readouterr().out
    preds = json.loads((pred / "predictions.json").read_text())
    assert len(preds) == 4 and all(set(p) == {"image", "score", "map", "anomalous"} for p in preds)
    assert all(p["anomalous"] == (p["score"] >= 0.5) and 0 <= p["score"] <= 1 for p in preds)
    assert len(list((pred / "maps").rglob("*.png"))) == 4 and len(list((pred / "overlays").rglob("*.png"))) == 4   # maps/<sub-folder>/<name>.png
    # predict scores what evaluate scored: same model, same class, same images
    model = KAnoCLIP.from_checkpoint(run)
    ds = AnomalyDataset(target, image_size=SIZE, mean=model.backbone.mean, std=model.backbone.std)
    want, _ = model.predict(torch.stack([ds[i]["image"] for i in range(len(ds))]), "ring")
    got = {Path(p["image"]).resolve(): p["score"] for p in preds}
    for i, s in enumerate(ds.samples):
        assert abs(got[(target / s["img_path"]).resolve()] - float(want[i])) < 1e-4
