"Shared pytest setup: never touch the network, and find the real data folder when it is there."
import os
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
