"""Generated copies of the datasets' layouts, with files encoded like the real downloads.

Each `<name>_replica(root, variant)` writes a tiny copy of a dataset as its users' disks hold it (formats,
modes, mask encodings, names, label files: the table in nbs/09_data.ipynb, *The datasets' files*) and returns
a `Replica` whose `truth` says what the index must contain for every image, and which pixels of each mask
are anomalous. `check_replica` compares an index and the decoded masks with that truth.
"""
from pathlib import Path

import numpy as np
from PIL import Image


def texture(size, seed=0, lo=60, hi=160):
    "A `size` = (W, H) grayscale uint8 texture (noise), so JPEG files are not trivially small."
    return np.random.default_rng(seed).integers(lo, hi, (size[1], size[0]), dtype=np.uint8)


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


GREY_PALETTE = [v for i in range(256) for v in (i, i, i)]     # index k shows grey level k


def encode_mask(region: np.ndarray, encoding: str, ids=(1,)) -> Image.Image:
    """A mask image for boolean `region` [H, W] in one of the encodings the datasets use:
    '0/255' (L), '0/1' (L), 'ids' (L, defect-class numbers `ids` cycling over the region's rows),
    'ids-P' (the same numbers as palette indexes with a grey palette), '1bit' (mode 1), 'rgb' (3 channels 0/255)."""
    if encoding == "1bit": return Image.fromarray(region).convert("1")
    if encoding in ("ids", "ids-P"):
        a = np.zeros(region.shape, np.uint8)
        rows = np.nonzero(region.any(1))[0]
        for k, r in enumerate(rows): a[r] = np.where(region[r], ids[k % len(ids)], 0)
        im = Image.fromarray(a, "L")
        if encoding == "ids-P": im = im.convert("P"); im.putpalette(GREY_PALETTE)
        return im
    v = {"0/255": 255, "0/1": 1, "rgb": 255}[encoding]
    a = region.astype(np.uint8) * v
    return Image.fromarray(np.stack([a] * 3, -1) if encoding == "rgb" else a)


def encode_image(size, mode: str, seed: int) -> Image.Image:
    "A `size` texture image in PIL `mode` (RGB, L, CMYK, P, RGBA, I;16)."
    g = texture(size, seed)
    if mode == "I;16": return Image.fromarray(g.astype(np.uint16) * 257)
    rgb = Image.fromarray(np.stack([g, np.roll(g, 1, 0), np.roll(g, 1, 1)], -1))
    return rgb if mode == "RGB" else Image.fromarray(g, "L") if mode == "L" else rgb.convert(mode)


class Replica:
    "The files of one replica and what its index must say: truth[(split, img_path)] = (cls, specie, anomaly, mask_path, region)."
    def __init__(self, root):
        self.root, self.truth, self.n = Path(root), {}, 0

    def image(self, rel, size=(16, 16), mode="RGB", **save_kw) -> str:
        "Write an image at `rel` (under the root) and return `rel`."
        self.n += 1
        save(encode_image(size, mode, self.n), self.root / rel, **save_kw)
        return rel

    def mask(self, rel, size, box=None, encoding="0/255", ids=(1,)) -> np.ndarray:
        "Write a mask at `rel` with the `box` region anomalous; returns the region."
        region = box_mask(size, box).astype(bool)
        save(encode_mask(region, encoding, ids), self.root / rel)
        return region

    def sample(self, split, img, cls, specie="", anomaly=0, mask="", region=None):
        self.truth[split, img] = (cls, specie, anomaly, mask, region)

    def text(self, rel, text):
        p = self.root / rel; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(text)


def box_for(size, k=0):
    "A small defect box inside an image of `size`, shifted by `k`."
    w, h = size
    x, y = 1 + (3 * k) % max(1, w - 6), 1 + (2 * k) % max(1, h - 5)
    return (x, y, x + 4, y + 3)


# ---------------------------------------------------------------- MVTec AD and MPDD
def mvtec_replica(root, variant="mvtec"):
    """MVTec AD: <cls>/{train/good, test/good, test/<defect>}/NNN.png, masks ground_truth/<defect>/NNN_mask.png
    (L, 0/255). RGB classes and grayscale ones (grid, screw, zipper). Text files at the root.
    variant 'mpdd': MPDD's classes, RGB, one upper-case .PNG image; 'mpdd-nosuffix': masks named like their image."""
    r = Replica(root)
    classes = (("bottle", "RGB", 20), ("grid", "L", 16)) if variant == "mvtec" else (("bracket_black", "RGB", 18), ("tubes", "RGB", 14))
    for c, mode, s in classes:
        for i in range(3): r.sample("train", r.image(f"{c}/train/good/{i:03d}.png", (s, s), mode), c)
        for i in range(2): r.sample("test", r.image(f"{c}/test/good/{i:03d}.png", (s, s), mode), c)
        for d, n in (("broken", 2), ("crack", 1)):
            for i in range(n):
                ext = "PNG" if variant != "mvtec" and (d, i) == ("broken", 1) else "png"
                im = r.image(f"{c}/test/{d}/{i:03d}.{ext}", (s, s), mode)
                m = f"{c}/ground_truth/{d}/{i:03d}{'' if variant == 'mpdd-nosuffix' else '_mask'}.png"
                r.sample("test", im, c, d, 1, m, r.mask(m, (s, s), box_for((s, s), i)))
    r.text("license.txt", "not a class"); r.text("readme.txt", "not a class")
    return r


# ---------------------------------------------------------------- VisA
def visa_replica(root, mask_mode="ids"):
    """VisA as downloaded: <cls>/Data/Images/{Normal,Anomaly}/*.JPG (RGB JPEG, a size per class), masks
    <cls>/Data/Masks/Anomaly/*.png holding defect-class numbers (1, 2, 3 ...) on 0 (`mask_mode` 'ids': L,
    'ids-P': palette indexes), <cls>/image_anno.csv, and split_csv/1cls.csv (object,split,label,image,mask)."""
    r = Replica(root)
    rows = ["object,split,label,image,mask"]
    for c, size, digits in (("candle", (24, 16), 4), ("capsules", (18, 20), 3), ("pcb1", (20, 14), 3)):
        anno = ["image,label,mask"]
        for i in range(4):
            p = r.image(f"{c}/Data/Images/Normal/{i + 800:0{digits}d}.JPG" if digits == 4 else f"{c}/Data/Images/Normal/{i:03d}.JPG", size)
            split = "train" if i < 2 else "test"
            rows.append(f"{c},{split},normal,{p},"); anno.append(f"{p},normal,"); r.sample(split, p, c)
        for i, ids in enumerate(((1,), (2,), (1, 3))):
            p, q = f"{c}/Data/Images/Anomaly/{i:03d}.JPG", f"{c}/Data/Masks/Anomaly/{i:03d}.png"
            r.image(p, size)
            region = r.mask(q, size, box_for(size, i), mask_mode, ids)
            rows.append(f"{c},test,anomaly,{p},{q}"); anno.append(f'{p},"melt, scratch",{q}' if i == 2 else f"{p},melt,{q}")
            r.sample("test", p, c, "", 1, q, region)
        r.text(f"{c}/image_anno.csv", "\n".join(anno) + "\n")
    r.text("split_csv/1cls.csv", "\n".join(rows) + "\n")
    r.text("split_csv/2cls_fewshot.csv", "object,split,label,image,mask\n")
    return r


# ---------------------------------------------------------------- BTAD
BTAD_EXTS = {"btad": {"01": ("bmp", "png"), "02": ("png", "png"), "03": ("bmp", "bmp")},   # as downloaded
             "anomalib": {c: ("png", "png") for c in ("01", "02", "03")}}                  # anomalib's converted copy


def btad_replica(root, variant="btad", encoding="0/255"):
    "BTAD: BTech_Dataset_transformed/{01,02,03}/{train/ok, test/ok, test/ko}, masks ground_truth/ko/<same stem>."
    r = Replica(root)
    for c, (ie, me) in BTAD_EXTS[variant].items():
        size = {"01": (20, 20), "02": (12, 12), "03": (20, 15)}[c]
        for i in range(3): r.sample("train", r.image(f"{c}/train/ok/{i:04d}.{ie}", size), c)
        for i in range(2): r.sample("test", r.image(f"{c}/test/ok/{i:04d}.{ie}", size), c)
        for i in range(2):
            im, m = r.image(f"{c}/test/ko/{i:04d}.{ie}", size), f"{c}/ground_truth/ko/{i:04d}.{me}"
            r.sample("test", im, c, "ko", 1, m, r.mask(m, size, box_for(size, i), encoding))
    return r


# ---------------------------------------------------------------- KolektorSDD
SDD = "electrical_commutator"


def sdd_replica(root, variant="raw", encoding="0/255"):
    """KolektorSDD. 'raw' (as downloaded): kosNN/PartK.jpg (grayscale JPEG, tall) with PartK_label.bmp for every
    image, all black for defect-free ones. 'adaclip' / 'anomalyclip': the re-split copies the zero-shot papers
    evaluate (thirds of each image; SDD/ or 'electrical commutators'/ class folder, MVTec-like, 3-channel
    PNG images and <name>_mask.png masks)."""
    r = Replica(root)
    if variant == "raw":
        for k in (1, 2, 3):
            for p in range(4):
                size = (10, 24 + k)
                im = r.image(f"kos{k:02d}/Part{p}.jpg", size, "L", quality=95)
                bad = p == k
                region = r.mask(f"kos{k:02d}/Part{p}_label.bmp", size, box_for(size, p) if bad else None, encoding)
                r.sample("test", im, SDD, "", int(bad), f"kos{k:02d}/Part{p}_label.bmp" if bad else "", region if bad else None)
        return r
    c = "SDD" if variant == "adaclip" else "electrical commutators"
    for i in range(3): r.sample("train", r.image(f"{c}/train/good/kos0{i + 1}_Part0_{i}.png", (10, 8)), SDD)
    for i in range(2): r.sample("test", r.image(f"{c}/test/good/kos0{i + 1}_Part1_{i}.png", (10, 8)), SDD)
    for i in range(2):
        im, m = r.image(f"{c}/test/defect/kos0{i + 4}_Part2_{i}.png", (10, 8)), f"{c}/ground_truth/defect/kos0{i + 4}_Part2_{i}_mask.png"
        r.sample("test", im, SDD, "defect", 1, m, r.mask(m, (10, 8), box_for((10, 8), i), "rgb"))
    return r


# ---------------------------------------------------------------- DAGM 2007
def dagm_replica(root, variant="kaggle", encoding="0/255", classes=(1, 2, 10)):
    """DAGM 2007. 'kaggle' (the release the zero-shot papers use): ClassN/{Train,Test}/NNNN.PNG (8-bit grayscale),
    weak elliptical labels ClassN/{Train,Test}/Label/NNNN_label.PNG for the defective images only, and Label/Labels.txt.
    'adaclip': AdaCLIP's re-laid copy ClassN/{train/good, test/good, test/defect, ground_truth/defect/NNNN_label.PNG}."""
    r = Replica(root)
    s = (16, 16)
    for n in classes:
        c = f"Class{n}"
        if variant == "adaclip":
            for i in range(1, 4): r.sample("train", r.image(f"{c}/train/good/{i:04d}.PNG", s, "L"), c)
            for i in range(4, 6): r.sample("test", r.image(f"{c}/test/good/{i:04d}.PNG", s, "L"), c)
            im, m = r.image(f"{c}/test/defect/0007.PNG", s, "L"), f"{c}/ground_truth/defect/0007_label.PNG"
            r.sample("test", im, c, "defect", 1, m, r.mask(m, s, box_for(s, n), encoding))
            continue
        for sub, split, bad in (("Train", "train", (3, 5)), ("Test", "test", (2,))):
            lines = ["1"]
            for i in range(1, 7):
                im = r.image(f"{c}/{sub}/{i:04d}.PNG", s, "L")
                if i in bad:
                    m = f"{c}/{sub}/Label/{i:04d}_label.PNG"
                    r.sample(split, im, c, "", 1, m, r.mask(m, s, box_for(s, i), encoding))
                    lines.append(f"{i}\t1\t{i:04d}.PNG\t0\t{i:04d}_label.PNG")
                else:
                    r.sample(split, im, c); lines.append(f"{i}\t0\t{i:04d}.PNG\t0\t0")
            r.text(f"{c}/{sub}/Label/Labels.txt", "\n".join(lines) + "\n")
    return r


# ---------------------------------------------------------------- BrainMRI, LiverCT, RESC (MVFA-AD, BMAD)
MEDICAL = {"brainmri": ("brain", "00002_60"), "liverct": ("liver", "4_487"), "resc": ("retina", "9_28")}  # class, a file stem


def medical_replica(root, name="brainmri", variant="mvfa", mode="L"):
    """MVFA-AD: {valid,test}/{good,Ungood}/img/<vol>_<slice>.png, masks test/Ungood/anomaly_mask/<same name> (0/255);
    no train folder. BMAD: train/good/img, {valid,test}/{good,Ungood}/{img,label}. Images grayscale or RGB (`mode`)."""
    r = Replica(root)
    cls, stem = MEDICAL[name]
    vol, sl = stem.split("_")
    s = (16, 16) if name != "resc" else (24, 12)
    masks = "anomaly_mask" if variant == "mvfa" else "label"
    name_of = lambda i: f"{vol}_{int(sl) + i}.png" if name != "brainmri" else f"{int(vol) + i:05d}_{sl}.png"
    if variant == "bmad":
        for i in range(3): r.sample("train", r.image(f"train/good/img/{name_of(i)}", s, mode), cls)
    for split in ("valid", "test"):
        for i in range(2):
            im = r.image(f"{split}/good/img/{name_of(10 + i)}", s, mode)
            if split == "test": r.sample("test", im, cls)
        for i in range(3):
            im, m = r.image(f"{split}/Ungood/img/{name_of(20 + i)}", s, mode), f"{split}/Ungood/{masks}/{name_of(20 + i)}"
            region = r.mask(m, s, box_for(s, i))
            if split == "test": r.sample("test", im, cls, "", 1, m, region)
    return r


# ---------------------------------------------------------------- classification only
def br35h_replica(root):
    """Br35H (Kaggle): yes/y0.jpg ... (tumour), no/no0.jpg ... (normal), pred/pred0.jpg (unlabelled), and
    Br35H-Mask-RCNN/{TRAIN,VAL,TEST}/ copies with COCO json; JPEGs of many sizes and modes (RGB, L, CMYK)."""
    r = Replica(root)
    for i, (mode, size) in enumerate((("RGB", (20, 16)), ("L", (12, 18)), ("CMYK", (16, 16)))):
        r.sample("test", r.image(f"yes/y{i}.jpg", size, mode), "brain", "", 1)
        r.sample("test", r.image(f"no/no{i}.jpg", size[::-1], mode), "brain")
    r.image("pred/pred0.jpg", (10, 10))
    r.image("Br35H-Mask-RCNN/TRAIN/y0.jpg", (20, 16)); r.text("Br35H-Mask-RCNN/annotations_train.json", "{}")
    return r


def brainmri_kaggle_replica(root):
    "AnomalyCLIP's BrainMRI: Kaggle brain_tumor_dataset/{yes,no} with mixed names and extensions ('Y1.jpg', '1 no.jpeg')."
    r = Replica(root)
    for i, ext in enumerate(("jpg", "JPG", "jpeg")):
        r.sample("test", r.image(f"brain_tumor_dataset/yes/Y{i + 1}.{ext}", (14, 12)), "brain", "", 1)
        r.sample("test", r.image(f"brain_tumor_dataset/no/{i + 1} no.{ext}", (12, 14), "L"), "brain")
    return r


def covid_replica(root, variant="v4"):
    """COVID-19 Radiography Database. v4: COVID-19_Radiography_Dataset/{COVID,Normal,Lung_Opacity,Viral Pneumonia}/
    {images,masks}/<Class>-N.png (grayscale PNG; masks/ are lung masks, not anomalies), *.metadata.xlsx, README.md.txt.
    v1: 'COVID-19 Radiography Database'/{COVID-19,NORMAL,Viral Pneumonia}/'NORMAL (1).png'."""
    r = Replica(root)
    if variant == "v4":
        top = "COVID-19_Radiography_Dataset"
        for k, n in (("COVID", 3), ("Normal", 4), ("Lung_Opacity", 2), ("Viral Pneumonia", 2)):
            for i in range(n):
                p = r.image(f"{top}/{k}/images/{k}-{i + 1}.png", (16, 16), "L" if i else "RGB")
                r.mask(f"{top}/{k}/masks/{k}-{i + 1}.png", (12, 12), (2, 2, 10, 10))
                if k in ("COVID", "Normal"): r.sample("test", p, "chest", "", int(k == "COVID"))
            r.text(f"{top}/{k}.metadata.xlsx", "not a spreadsheet")
        r.text(f"{top}/README.md.txt", "readme")
    else:
        top = "COVID-19 Radiography Database"
        for k, n in (("COVID-19", 3), ("NORMAL", 4), ("Viral Pneumonia", 2)):
            for i in range(n):
                p = r.image(f"{top}/{k}/{k} ({i + 1}).png", (16, 16), "L")
                if k != "Viral Pneumonia": r.sample("test", p, "chest", "", int(k == "COVID-19"))
    return r


def headct_replica(root, nested=True):
    """HeadCT (Kaggle): labels.csv with header 'id, hemorrhage' (a space before the second name), ids not padded,
    images head_ct/head_ct/000.png ... (the zip nests the folder; `nested=False`: flattened), sizes and modes vary."""
    r = Replica(root)
    d = "head_ct/head_ct" if nested else "head_ct"
    rows = ["id, hemorrhage"]
    for i in range(8):
        y = int(i < 4)
        p = r.image(f"{d}/{i:03d}.png", (14 + i, 12 + 2 * i), ("L", "RGB")[i % 2])
        rows.append(f"{i},{y}"); r.sample("test", p, "head", "", y)
    r.text("labels.csv", "\n".join(rows) + "\n")
    return r


def relaid_replica(root, cls_dir, cls):
    """AdaCLIP / AnomalyCLIP re-laid copies of the medical and classification sets: <root>/<cls_dir>/{train/good,
    test/good, test/<defect>} (e.g. HeadCT_anomaly_detection/headct/, Br35h_anomaly_detection/br35h/)."""
    r = Replica(root)
    for i in range(2): r.sample("test", r.image(f"{cls_dir}/test/good/{i}.png", (12, 12), "L"), cls)
    for i in range(3): r.sample("test", r.image(f"{cls_dir}/test/defect/{i}.png", (12, 12), "L"), cls, "defect", 1)
    (Path(root) / cls_dir / "train/good").mkdir(parents=True)
    return r


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


# ---------------------------------------------------------------- comparing an index with a replica's truth
def check_replica(rep: Replica, meta: dict, splits=("train", "test")):
    "The index lists exactly the replica's images with the right class, defect type, label and mask, and every mask decodes to its region."
    from kanoclip.data import load_pair
    got = {(split, s["img_path"]): (s["cls_name"], s["specie_name"], s["anomaly"], s["mask_path"])
           for split in splits for v in meta.get(split, {}).values() for s in v}
    want = {k: v[:4] for k, v in rep.truth.items() if k[0] in splits}
    assert got == want, (sorted(set(got.items()) ^ set(want.items())))[:6]
    for (split, img), (*_, mask, region) in rep.truth.items():
        if mask:
            _, m = load_pair(rep.root / img, rep.root / mask)
            assert np.array_equal(m, region), f"{mask}: decoded mask differs from the drawn region"
