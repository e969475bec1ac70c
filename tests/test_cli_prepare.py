"`kanoclip prepare`: folder layouts, every file checked, mask statistics and empty-mask warnings per class."
import json

import numpy as np
import pytest
from PIL import Image

from kanoclip.cli import main
from conftest import one_line_error, run_cli
from replicas import box_mask, mtd_replica, save, texture


def prepare(capsys, root, *args):
    "Run `kanoclip prepare --root ROOT *args` in this process: (exit code, stdout, stderr)."
    return run_cli(capsys, "prepare", "--root", root, *args)


def table_row(out, split, cls):
    "The numbers of one row of the statistics table printed by prepare."
    for line in out.splitlines():
        f = line.split()
        if f[:2] == [split, cls]: return f[2:]
    raise AssertionError(f"no row {split} {cls} in:\n{out}")


def test_magnetic_tiles_masks_beside_images(capsys, tmp_path):
    "The issue's command on the magnetic-tile layout: 6 normal tiles, 8 cracks with their masks, 4 masks empty."
    tiles = mtd_replica(tmp_path / "mtd")
    code, out, err = prepare(capsys, tmp_path / "mtd", "--dataset", "folder", "--normal-dir", "MT_Free/Imgs",
                             "--abnormal-dir", "MT_Crack/Imgs", "--mask-dir", "MT_Crack/Imgs")
    assert code == 0, err
    assert "1 classes, 14 test images (8 anomalous), 0 train images" in out
    masks = [box_mask(Image.open(mk).size, box) for _, mk, box in tiles["MT_Crack/Imgs"]]
    area = np.mean([(m > 0).mean() for m in masks])
    assert table_row(out, "test", "mtd") == ["6", "8", "8", "4", f"{100 * area:.2f}%", "0"]
    empty = sorted(im.relative_to(tmp_path / "mtd").as_posix() for im, _, box in tiles["MT_Crack/Imgs"] if box is None)
    assert err.startswith("kanoclip prepare: warning: 4 anomalous image(s) have an empty mask")
    for im in empty: assert f"{im} (mask {im[:-4]}.png)" in err
    meta = json.loads((tmp_path / "mtd/meta.json").read_text())
    assert not [s for s in meta["test"]["mtd"] if s["img_path"].endswith(".png")]


@pytest.mark.parametrize("args, says", [
    (["--normal-dir", "MT_Free/Imgs", "--abnormal-dir", "MT_Free/Imgs"], "are the same folder"),
    (["--normal-dir", "MT_Free/Imgs", "--abnormal-dir", ""], "abnormal_dir is empty"),
    (["--normal-dir", "MT_Free/Imgs", "--abnormal-dir", "."], "are nested"),
    (["--normal-dir", "MT_Free/Imgs", "--abnormal-dir", "MT_Void"], "MT_Void holds no images"),
])
def test_folder_mistakes_are_one_line_errors(capsys, tmp_path, args, says):
    mtd_replica(tmp_path, n_defect=2, empty=())
    (tmp_path / "MT_Void").mkdir()
    one_line_error(capsys, "prepare", "--root", tmp_path, "--dataset", "folder", *args, says=says)
    assert not (tmp_path / "meta.json").exists()


def test_normal_only_and_anomalous_only(capsys, tmp_path):
    mtd_replica(tmp_path, n_defect=3, empty=())
    code, out, _ = prepare(capsys, tmp_path, "--dataset", "folder", "--normal-dir", "MT_Free/Imgs")
    assert code == 0 and "6 test images (0 anomalous)" in out
    code, out, _ = prepare(capsys, tmp_path, "--dataset", "folder", "--abnormal-dir", "MT_Fray/Imgs", "--mask-dir", "MT_Fray/Imgs")
    assert code == 0 and "3 test images (3 anomalous)" in out


def test_bad_files_listed_at_once_then_skipped(capsys, tmp_path):
    "A truncated JPEG, a text file named .png, a zero-byte file, a wrong-size mask: one error, then --skip-bad."
    tiles = mtd_replica(tmp_path, n_defect=4, empty=())
    (cut, _, _), (txt, _, _) = tiles["MT_Free/Imgs"][:2]
    cut.write_bytes(cut.read_bytes()[:200])
    txt.unlink(); txt = txt.with_suffix(".png"); txt.write_text("not a png")   # x.png alone: an image, a bad one
    zero, wrong = tiles["MT_Crack/Imgs"][0][0], tiles["MT_Crack/Imgs"][1][1]
    zero.write_bytes(b"")
    save(box_mask((5, 5), None), wrong)
    args = ("--dataset", "folder", "--normal-dir", "MT_Free/Imgs", "--abnormal-dir", "MT_Crack/Imgs", "--mask-dir", "MT_Crack/Imgs")
    one_line_error(capsys, "prepare", "--root", tmp_path, *args, says=[
        "4 of 10 indexed samples have unusable files; meta.json was not written",
        cut.name, txt.name, f"{zero.name} is empty", f"{wrong.name} is 5x5 but its image"])
    assert not (tmp_path / "meta.json").exists()
    code, out, err = prepare(capsys, tmp_path, *args, "--skip-bad")
    assert code == 0 and "6 test images (2 anomalous)" in out
    assert "left out 4 samples with unusable files:" in out and out.count(str(tmp_path)) >= 4
    assert table_row(out, "test", tmp_path.name)[-1] == "4"


def test_exif_rotated_tiles_pass(capsys, tmp_path):
    "Tiles stored sideways with EXIF orientation 6 and masks written from the stored pixels are not size errors."
    for i, (w, h) in enumerate([(60, 40), (48, 48)]):
        exif = Image.Exif(); exif[0x0112] = 6
        save(Image.fromarray(texture((w, h), i), "L"), tmp_path / f"bad/t{i}.jpg", exif=exif)
        save(box_mask((w, h), (5, 5, 20, 15)), tmp_path / f"bad/t{i}.png")
    save(texture((40, 60)), tmp_path / "good/n.png")
    code, out, err = prepare(capsys, tmp_path, "--dataset", "folder", "--normal-dir", "good", "--abnormal-dir", "bad",
                             "--mask-dir", "bad")
    assert code == 0, err
    assert table_row(out, "test", tmp_path.name)[:4] == ["1", "2", "2", "0"]


def test_prepare_help_shows_the_folder_layout(capsys):
    assert main(["prepare", "--help"]) == 0
    out = capsys.readouterr().out
    for s in ("--skip-bad", "ROOT/", "good/", "defect/", "masks/", "beside their images", "--mask-dir equal to --abnormal-dir",
              "normal-only"): assert s in out, s


def test_real_bottle_statistics(capsys, tmp_path, bottle_root):
    "On the real MVTec AD bottle test split (linked, the shared copy is read-only): counts and mask area."
    (tmp_path / "bottle").symlink_to(bottle_root / "bottle")
    code, out, err = prepare(capsys, tmp_path, "--dataset", "mvtec")
    assert code == 0 and err == "", err
    masks = sorted((bottle_root / "bottle/ground_truth").glob("*/*_mask.png"))
    area = np.mean([(np.asarray(Image.open(p)) > 0).mean() for p in masks])
    assert len(masks) == 63
    assert table_row(out, "test", "bottle") == ["20", "63", "63", "0", f"{100 * area:.2f}%", "0"]
