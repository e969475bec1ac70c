"Generated copies of dataset layouts, encoded like the real downloads (formats in nbs/09_data.ipynb)."
from pathlib import Path

import numpy as np
from PIL import Image


def texture(size, seed=0, lo=60, hi=160):
    "A `size` = (W, H) grayscale uint8 texture (noise), so JPEG files are not trivially small."
    rng = np.random.default_rng(seed)
    return rng.integers(lo, hi, (size[1], size[0]), dtype=np.uint8)


def save(a, path, **kw):
    "Save array or image `a` at `path` (format from the extension), creating folders; returns the path."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    (a if isinstance(a, Image.Image) else Image.fromarray(a)).save(path, **kw)
    return path


def box_mask(size, box, value=255, dtype=np.uint8):
    "A `size` = (W, H) mask with `value` in `box` = (x0, y0, x1, y1) (exclusive ends) on 0; box None: empty."
    m = np.zeros((size[1], size[0]), dtype)
    if box is not None: m[box[1]:box[3], box[0]:box[2]] = value
    return m


# ---------------------------------------------------------------- magnetic tiles (a `folder` layout)
MT_DEFECTS = ("Blowhole", "Break", "Crack", "Fray", "Uneven")


def mtd_replica(root, n_free=6, n_defect=8, empty=(("Crack", 1), ("Crack", 3), ("Crack", 4), ("Crack", 6))):
    """The magnetic-tile layout: MT_<Defect>/Imgs/exp<k>_num_<n>.jpg, grayscale JPEG tiles of many sizes, each
    with a 0/255 PNG mask of the same name beside it; MT_Free/Imgs holds defect-free tiles with all-black masks.
    `empty` lists (defect, index) of anomalous tiles whose mask is all black (the real set has 4 such tiles).
    Returns {folder: [(image, mask, box or None)]}."""
    root, out, n = Path(root), {}, 0
    for d in ("Free",) + MT_DEFECTS:
        rows = out[f"MT_{d}/Imgs"] = []
        for i in range(n_free if d == "Free" else n_defect):
            n += 1
            w, h = 40 + (n * 13) % 50, 30 + (n * 7) % 45                    # every tile its own size
            box = None if d == "Free" or (d, i) in empty else (w // 4, h // 3, w // 4 + 6, h // 3 + 5)
            a = texture((w, h), n)
            if box: a[box[1]:box[3], box[0]:box[2]] = 15                   # the defect: a dark patch
            stem = f"exp{1 + i % 3}_num_{1000 + n}"
            im = save(Image.fromarray(a, "L"), root / f"MT_{d}/Imgs/{stem}.jpg", quality=90)
            mk = save(box_mask((w, h), box), root / f"MT_{d}/Imgs/{stem}.png")
            rows.append((im, mk, box))
    return out
