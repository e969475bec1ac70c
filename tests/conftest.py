"Shared pytest setup: never touch the network, find the real data folder when it is there, make a folder read-only."
import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download weights

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    "The folder holding `mvtec_ad_bottle/` (the real MVTec AD bottle split), named by $KANOCLIP_DATA; None without it."
    p = os.environ.get("KANOCLIP_DATA")
    return Path(p) if p and (Path(p) / "mvtec_ad_bottle" / "bottle").is_dir() else None


@pytest.fixture
def bottle_root() -> Path:
    "The real MVTec AD bottle split (its parent folder, MVTec layout); skips the test when absent."
    d = shared_data()
    if d is None:
        pytest.skip("real MVTec AD bottle split not found: set KANOCLIP_DATA to the folder holding mvtec_ad_bottle/")
    return d / "mvtec_ad_bottle"


@contextmanager
def read_only(folder):
    """`folder` cannot be written inside the block — not even by root, for whom permission bits do not count: then it
    is made immutable (`chattr +i`; the test is skipped where that is not allowed)."""
    folder = Path(folder)
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("running as root where chattr +i is not allowed: no way to make a folder read-only")
        undo = lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o555); undo = lambda: folder.chmod(mode)
    try: yield folder
    finally: undo()


def run_cli(capsys, *argv):
    "Run `kanoclip *argv` in this process: (exit code, stdout, stderr)."
    from kanoclip.cli import main
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv, says):
    "Run a command that must fail as a user error: exit 2, one line on stderr containing every string of `says`."
    code, out, err = run_cli(capsys, *argv)
    lines = [l for l in re.split(r"[\r\n]", err) if l and "%|" not in l]    # progress bars aside
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for s in [says] if isinstance(says, str) else says: assert s in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    "A checkpoint of the tiny model at 112 px, its heads perturbed away from their zero start, for one test module."
    from kanoclip.model import KAnoCLIP, KAnoCLIPConfig, perturb_
    d = tmp_path_factory.mktemp("ckpt") / "run"
    perturb_(KAnoCLIP(KAnoCLIPConfig.tiny(image_size=112)), std=0.05, seed=1).save(d)
    return d
