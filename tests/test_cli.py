"The `kanoclip` command line: every error path exits 2 with one line; the console script is installed."
import subprocess

import pytest

from conftest import one_line_error, run_cli as run


def test_console_script_help():
    out = subprocess.run(["kanoclip", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for cmd in ("prepare", "knowledge", "train", "test", "predict", "demo"): assert cmd in out.stdout


def test_console_script_error_is_one_line(tmp_path):
    out = subprocess.run(["kanoclip", "test", "--checkpoint", str(tmp_path / "none"), "--data", str(tmp_path),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "does not exist" in out.stderr


@pytest.mark.parametrize("cmd", ["prepare", "knowledge", "train", "test", "predict", "demo"])
def test_help_of_every_command(capsys, cmd):
    code, out, _ = run(capsys, cmd, "--help")
    assert code == 0 and f"usage: kanoclip {cmd}" in out


def test_unknown_dataset_name(capsys, tmp_path):
    one_line_error(capsys, "prepare", "--dataset", "imagenet", "--root", tmp_path, says="invalid choice: 'imagenet'")


def test_prepare_missing_root(capsys, tmp_path):
    one_line_error(capsys, "prepare", "--dataset", "mvtec", "--root", tmp_path / "absent", says=str(tmp_path / "absent"))


def test_prepare_empty_folder(capsys, tmp_path):
    one_line_error(capsys, "prepare", "--dataset", "mvtec", "--root", tmp_path, says=str(tmp_path))


def test_missing_checkpoint(capsys, tmp_path):
    one_line_error(capsys, "test", "--checkpoint", tmp_path / "run", "--data", tmp_path, "--out", tmp_path / "o",
                   says="does not exist")
    one_line_error(capsys, "predict", "--checkpoint", tmp_path / "run", tmp_path, "--out", tmp_path / "o",
                   says="does not exist")


def test_checkpoint_folder_without_config(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    one_line_error(capsys, "test", "--checkpoint", tmp_path / "run", "--data", tmp_path, "--out", tmp_path / "o",
                   says="config.json is missing")


def test_train_without_prepared_data(capsys, tmp_path):
    one_line_error(capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--backbone", "kanoclip-tiny",
                   "--pretrained", "none", says="no meta.json")


def test_train_unknown_backbone(capsys, tmp_path):
    from kanoclip.synthetic import make_synthetic
    root = make_synthetic(tmp_path / "data", classes=["disc"], n_train=0, n_normal=1, n_anomalous=1, size=64)
    one_line_error(capsys, "train", "--data", root, "--out", tmp_path / "run", "--backbone", "ViT-Q-99",
                   says="unknown backbone 'ViT-Q-99'")


def test_missing_required_argument(capsys, tmp_path):
    one_line_error(capsys, "train", "--out", tmp_path / "run", says="--data")


def test_unknown_command(capsys):
    one_line_error(capsys, "frobnicate", says="invalid choice: 'frobnicate'")


def test_knowledge_offline_for_classes_and_dataset(capsys, tmp_path):
    "Offline defaults: built-in class descriptions, mask-grounded image descriptions; resumable file."
    import json
    from kanoclip.synthetic import make_synthetic
    code, out, err = run(capsys, "knowledge", "--classes", "bottle", "metal_nut", "--out", tmp_path / "kb.json")
    assert code == 0, err
    kb = json.loads((tmp_path / "kb.json").read_text())
    assert sorted(kb["classes"]) == ["bottle", "metal_nut"] and all(len(e["llm"]) == 5 for e in kb["classes"].values())
    root = make_synthetic(tmp_path / "data", classes=["disc"], n_train=0, n_normal=1, n_anomalous=2, size=64)
    one_line_error(capsys, "knowledge", "--data", root, "--out", tmp_path / "kb2.json", says="'disc'")
    one_line_error(capsys, "knowledge", "--classes", "bottle", "--out", tmp_path / "kb3.json",
                   "--api-key-env", "KANOCLIP_NO_SUCH_VAR", says="KANOCLIP_NO_SUCH_VAR")


def test_knowledge_for_a_prepared_dataset(capsys, tmp_path, bottle_root):
    "The real MVTec AD bottle split: one mask-grounded description per anomalous image."
    import json, shutil
    from kanoclip.data import prepare_dataset
    data = tmp_path / "mvtec"; shutil.copytree(bottle_root, data)
    prepare_dataset("mvtec", data)
    code, _, err = run(capsys, "knowledge", "--data", data, "--out", tmp_path / "kb.json")
    assert code == 0, err
    kb = json.loads((tmp_path / "kb.json").read_text())
    assert list(kb["classes"]) == ["bottle"] and len(kb["images"]) == 63
    assert all(len(e["vqa"]) == 1 and e["vqa"][0] for e in kb["images"].values())


# --- user errors stay one line; bugs keep their traceback ------------------------------------------------------

def planted_bug(monkeypatch, error):
    "Make `kanoclip prepare` fail inside the library with `error`, as a bug would."
    import kanoclip.data
    def prepare_dataset(*a, **k): raise error
    monkeypatch.setattr(kanoclip.data, "prepare_dataset", prepare_dataset)


@pytest.mark.parametrize("error", [ZeroDivisionError("division by zero"), TypeError("planted"), ValueError("planted")],
                         ids=["ZeroDivisionError", "TypeError", "plain ValueError"])
def test_a_bug_shows_its_traceback_and_says_so(capsys, tmp_path, monkeypatch, error):
    planted_bug(monkeypatch, error)
    code, _, err = run(capsys, "prepare", "--dataset", "mvtec", "--root", tmp_path)
    assert code == 1, err
    assert "Traceback (most recent call last)" in err and "in prepare_dataset" in err, err   # where it happened
    assert f"{type(error).__name__}: {error}" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("kanoclip prepare: internal error") and "bug in kanoclip" in last and "report it" in last


def test_debug_shows_the_traceback_of_a_user_error(capsys, tmp_path):
    code, _, err = run(capsys, "prepare", "--dataset", "mvtec", "--root", tmp_path / "absent", "--debug")
    assert code == 2 and "Traceback (most recent call last)" in err
    assert err.strip().splitlines()[-1].startswith("kanoclip prepare: error:") and str(tmp_path / "absent") in err


def test_user_errors_name_the_option(capsys, tmp_path):
    one_line_error(capsys, "test", "--checkpoint", tmp_path, "--data", tmp_path, "--out", tmp_path / "o", "--device", "tpu:0",
                   says="kanoclip test: error: --device: 'tpu:0' is not a device")
    one_line_error(capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--epochs", "0",
                   says="kanoclip train: error: --epochs: epochs must be at least 1")
    one_line_error(capsys, "train", "--data", tmp_path, "--out", tmp_path / "run",
                   says=f"kanoclip train: error: --data: {tmp_path}: no meta.json there")
    from kanoclip.synthetic import make_synthetic
    root = make_synthetic(tmp_path / "data", classes=["disc"], n_train=0, n_normal=1, n_anomalous=1, size=64)
    one_line_error(capsys, "train", "--data", root, "--out", tmp_path / "run", "--resume",
                   says=f"kanoclip train: error: {tmp_path / 'run' / 'resume.safetensors'} not found: nothing to resume")


def test_seed_only_where_something_is_random(capsys, tmp_path):
    one_line_error(capsys, "test", "--checkpoint", tmp_path, "--data", tmp_path, "--out", tmp_path / "o", "--seed", "1",
                   says="unrecognized arguments: --seed 1")
