"`kanoclip train` prints the feature cache's size and place before encoding, and refuses a cache that cannot fit."
import kanoclip.train
from kanoclip.cli import main
from kanoclip.synthetic import make_synthetic
from kanoclip.train import _size, cache_bytes

TINY = ["--backbone", "kanoclip-tiny", "--pretrained", "none", "--image-size", "112", "--device", "cpu", "--n-ctx", "4"]


def test_train_prints_the_cache_and_refuses_one_that_does_not_fit(tmp_path, capsys, monkeypatch):
    data = make_synthetic(tmp_path / "aux", classes=["plate"], n_train=0, n_normal=2, n_anomalous=2, size=64)
    size = _size(cache_bytes(4, 4, (7, 7), 64, 112))
    monkeypatch.setattr(kanoclip.train, "_free_bytes", lambda mode, folder: 2**20)     # 1 MiB free
    encoded = []
    monkeypatch.setattr(kanoclip.train, "fill_cache", lambda *a, **k: encoded.append(1))
    for mode, says in [("memory", "of memory needed, 1.0 MB available; use --cache disk (it goes into the run folder) or --cache none"),
                       ("disk", "free some space, write the run elsewhere, or use --cache none")]:
        run = tmp_path / f"run_{mode}"
        assert main(["train", "--data", str(data), "--out", str(run), *TINY, "--cache", mode]) == 2
        out, err = capsys.readouterr()
        where = "in memory" if mode == "memory" else f"on disk in {run / 'feature_cache'}/"   # + the encoder's key
        assert f"feature cache: {size} {where}" in out and "(4 images x 4 stages x 7 x 7 patches x 64 dims, float32)" in out
        assert says in err and err.count("\n") == 1, err
    assert encoded == []                                                               # refused before encoding
    monkeypatch.undo()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "ok"), *TINY, "--cache", "disk", "--epochs", "1"]) == 0
    assert len(list((tmp_path / "ok" / "feature_cache").rglob("*.safetensors"))) == 4
