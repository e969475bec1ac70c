"kanoclip.metrics against scikit-learn, brute force and a slow, obviously-correct AUPRO reference."
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

import kanoclip.metrics as M
from kanoclip.metrics import (image_ap, image_auroc, image_f1max, image_metrics, pixel_ap, pixel_aupro, pixel_auroc,
                              pixel_f1max, pixel_metrics, pro_curve)

EIGHT = np.ones((3, 3), dtype=int)  # MVTec AD evaluation's structuring element


# ---------------------------------------------------------------- references

def brute_f1max(scores, labels) -> float:
    "Best F1 over every threshold t (predict score >= t), by direct counting."
    s, y = np.asarray(scores), np.asarray(labels).astype(bool)
    best = 0.0
    for t in np.unique(s):
        pred = s >= t
        tp, fp, fn = np.sum(pred & y), np.sum(pred & ~y), np.sum(~pred & y)
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


def ref_pro_curve(maps, masks):
    "(FPR, PRO) at every distinct threshold, relabelling the mask regions at every threshold."
    maps, masks = np.asarray(maps), np.asarray(masks).astype(bool)
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        overlaps = []
        for p, m in zip(pred, masks):
            lab, r = ndimage.label(m, structure=EIGHT)
            for k in range(1, r + 1):
                region = lab == k
                overlaps.append(p[region].sum() / region.sum())
        fprs.append((pred & normal).sum() / normal.sum())
        pros.append(np.mean(overlaps))
    return np.array(fprs), np.array(pros)


def ref_aupro(maps, masks, limit=0.3) -> float:
    "Exact curve, cut at `limit` with linear interpolation, trapezoid rule, divided by `limit`."
    fprs, pros = ref_pro_curve(maps, masks)
    i = int(np.searchsorted(fprs, limit, side="left"))  # first point with FPR >= limit
    if fprs[i] == limit: x, y = fprs[:i + 1], pros[:i + 1]
    else:
        y_lim = pros[i - 1] + (pros[i] - pros[i - 1]) * (limit - fprs[i - 1]) / (fprs[i] - fprs[i - 1])
        x, y = np.append(fprs[:i], limit), np.append(pros[:i], y_lim)
    return float(np.trapezoid(y, x) / limit)


# ---------------------------------------------------------------- data

def image_data(seed, n=400, decimals=None):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.35
    s = rng.normal(size=n) + 1.2 * y
    return (np.round(s, decimals) if decimals is not None else s), y


def pixel_data(seed=0, n=6, size=32, decimals=2):
    "Maps with defects scoring higher, several regions per mask (incl. corner-touching ones), some normal maps."
    rng = np.random.default_rng(seed)
    masks = np.zeros((max(n, 6), max(size, 32), max(size, 32)), bool)
    masks[0, 2:6, 2:6] = masks[0, 6:9, 6:9] = True                 # touch at a corner: one 8-connected region
    masks[0, 20:24, 3:30] = True
    masks[1, 10:12, 10:12] = masks[1, 12:14, 8:10] = True           # corner touch the other way
    masks[1, 25:31, 25:31] = masks[1, 0, 0] = True                  # incl. a one-pixel region
    masks[2, 5:20, 14:18] = masks[2, 1:3, 28:31] = True
    masks[4, 8:9, 0:32] = True                                       # a thin line; maps 3 and 5 are normal
    masks = masks[:n, :size, :size]
    maps = rng.random(masks.shape) * 0.75 + 0.35 * masks * rng.random(masks.shape)
    maps = ndimage.gaussian_filter(maps, (0, 1, 1))
    maps = np.round(maps, decimals) if decimals is not None else maps
    return maps.astype(np.float32), masks


# ---------------------------------------------------------------- image metrics

@pytest.mark.parametrize("decimals", [None, 1, 0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_metrics_equal_sklearn(seed, decimals):
    s, y = image_data(seed, decimals=decimals)
    assert abs(image_auroc(s, y) - roc_auc_score(y, s)) < 1e-9
    assert abs(image_ap(s, y) - average_precision_score(y, s)) < 1e-9
    assert abs(image_f1max(s, y) - brute_f1max(s, y)) < 1e-12
    assert image_metrics(s, y) == {"image_auroc": image_auroc(s, y), "image_ap": image_ap(s, y),
                                   "image_f1max": image_f1max(s, y)}


def test_image_metrics_are_python_floats_in_range():
    s, y = image_data(3, n=50)
    for f in (image_auroc, image_ap, image_f1max):
        v = f(s, y)
        assert type(v) is float and 0 <= v <= 1


def test_image_negative_and_integer_scores():
    s, y = image_data(4, n=200, decimals=0)
    assert abs(image_auroc((s * 10).astype(int), y) - roc_auc_score(y, s)) < 1e-12
    assert abs(image_auroc(-s, y) - (1 - roc_auc_score(y, s))) < 1e-12
    assert abs(image_auroc(s, y.astype(float)) - roc_auc_score(y, s)) < 1e-12


# ---------------------------------------------------------------- pixel metrics

@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_pixel_metrics_equal_sklearn(decimals):
    maps, masks = pixel_data(5, decimals=decimals)
    yv, sv = masks.ravel(), maps.ravel()
    assert abs(pixel_auroc(maps, masks) - roc_auc_score(yv, sv)) < 1e-9
    assert abs(pixel_ap(maps, masks) - average_precision_score(yv, sv)) < 1e-9
    assert abs(pixel_f1max(maps, masks) - brute_f1max(sv, yv)) < 1e-12


def test_pixel_metrics_with_negative_and_signed_zero_scores():
    maps, masks = pixel_data(6, decimals=1)
    maps = maps - 0.5
    maps[maps == 0] = -0.0                                           # -0.0 and 0.0 must tie
    maps[0, :3] = 0.0
    yv, sv = masks.ravel(), maps.ravel()
    assert abs(pixel_auroc(maps, masks) - roc_auc_score(yv, sv)) < 1e-9
    assert abs(pixel_ap(maps, masks) - average_precision_score(yv, sv)) < 1e-9
    assert abs(pixel_aupro(maps, masks) - ref_aupro(maps, masks)) < 1e-6


def test_maps_are_compared_in_their_own_precision():
    maps, masks = pixel_data(7, decimals=None)
    m64 = maps.astype(np.float64)
    m64[masks] += 1e-12                                              # below float32 resolution, seen in float64
    assert abs(pixel_auroc(m64, masks) - roc_auc_score(masks.ravel(), m64.ravel())) < 1e-12
    assert pixel_auroc(torch.from_numpy(maps).half(), masks) == pixel_auroc(maps.astype(np.float16).astype(np.float32), masks)
    ints = np.round(maps * 10).astype(np.int64)
    assert abs(pixel_auroc(ints, masks) - roc_auc_score(masks.ravel(), ints.ravel())) < 1e-12


def test_many_positives_few_negatives():
    "Masks that are mostly anomalous: the counting branch that locates each normal pixel among the positives."
    for decimals in (None, 2):
        maps, masks = pixel_data(14, decimals=decimals)
        maps, masks = 1 - maps, ~masks
        yv, sv = masks.ravel(), maps.ravel()
        assert abs(pixel_auroc(maps, masks) - roc_auc_score(yv, sv)) < 1e-9
        assert abs(pixel_ap(maps, masks) - average_precision_score(yv, sv)) < 1e-9
        assert abs(pixel_f1max(maps, masks) - brute_f1max(sv, yv)) < 1e-12
    assert abs(pixel_aupro(maps, masks) - ref_aupro(maps, masks)) < 1e-6


def test_counting_in_chunks_equals_counting_at_once():
    rng = np.random.default_rng(15)
    for pos, neg in [(np.round(rng.random(300), 2), np.round(rng.random(2000), 2)),
                     (rng.random(300), rng.random(2000)), (np.round(rng.random(50), 1), np.round(rng.random(900), 1))]:
        whole = M._Curves(pos, len(neg)); whole.count(neg); whole.finish()
        for size in (1, 2, 7, 100, 5000):                            # both search directions
            parts = M._Curves(pos, len(neg))
            for i in range(0, len(neg), size): parts.count(neg[i:i + size])
            parts.finish()
            np.testing.assert_array_equal(parts.fp_ge, whole.fp_ge)
            np.testing.assert_array_equal(parts.fp_gt, whole.fp_gt)
        a = np.unique(pos)[::-1]
        np.testing.assert_array_equal(whole.fp_ge, [(neg >= t).sum() for t in a])
        np.testing.assert_array_equal(whole.fp_gt, [(neg > t).sum() for t in a])
        np.testing.assert_array_equal(whole.tp, [(pos >= t).sum() for t in a])


# ---------------------------------------------------------------- AUPRO

@pytest.mark.parametrize("limit", [0.3, 0.05, 1.0])
@pytest.mark.parametrize("seed,decimals", [(0, 2), (1, 1), (2, 2)])
def test_aupro_equals_slow_reference(seed, decimals, limit):
    maps, masks = pixel_data(seed, decimals=decimals)
    assert abs(pixel_aupro(maps, masks, fpr_limit=limit) - ref_aupro(maps, masks, limit)) < 1e-6


def test_aupro_without_ties_equals_reference():
    maps, masks = pixel_data(3, n=4, size=20, decimals=None)
    assert len(np.unique(maps)) > 0.99 * maps.size
    assert abs(pixel_aupro(maps, masks) - ref_aupro(maps, masks)) < 1e-6


def test_pro_curve_is_the_reference_curve_without_collinear_points():
    maps, masks = pixel_data(8, decimals=2)
    fpr, pro = pro_curve(maps, masks)
    rf, rp = ref_pro_curve(maps, masks)
    ref = {(round(x, 12), round(y, 12)) for x, y in zip(rf, rp)}
    assert all((round(x, 12), round(y, 12)) in ref for x, y in zip(fpr, pro))   # every corner is on the curve
    ours = {(round(x, 12), round(y, 12)) for x, y in zip(fpr, pro)}
    for i in range(1, len(rf)):                                       # what is left out lies on a flat stretch
        if (round(rf[i], 12), round(rp[i], 12)) not in ours: assert abs(rp[i] - rp[i - 1]) < 1e-12
    assert fpr[0] == pro[0] == 0 and fpr[-1] == pro[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)


def test_aupro_uses_eight_connectivity():
    masks = np.zeros((1, 8, 8), bool)
    masks[0, 0:2, 0:2] = masks[0, 2:4, 2:4] = True                  # one 8-connected region of 8 px
    masks[0, 6, 6:8] = True
    maps = np.zeros((1, 8, 8), np.float32); maps[0, 0:2, 0:2] = 1
    assert abs(pixel_aupro(maps, masks) - 0.3625) < 1e-12                  # 4-connectivity would give 0.4333


def test_chunked_sweep_equals_one_chunk(monkeypatch):
    "Tie groups that straddle chunk boundaries are still one step of every curve."
    maps, masks = pixel_data(9, decimals=1)
    whole = pixel_metrics(maps, masks)
    for chunk in (7, 1024, 3000):
        monkeypatch.setattr(M, "CHUNK", chunk)
        got = pixel_metrics(maps, masks)
        for k in whole: assert abs(got[k] - whole[k]) < 1e-12, (chunk, k)
    assert abs(whole["pixel_aupro"] - ref_aupro(maps, masks)) < 1e-6


def test_pixel_metrics_is_the_individual_functions():
    maps, masks = pixel_data(10)
    pm = pixel_metrics(maps, masks, fpr_limit=0.2)
    assert pm["pixel_auroc"] == pixel_auroc(maps, masks)
    assert pm["pixel_ap"] == pixel_ap(maps, masks)
    assert pm["pixel_f1max"] == pixel_f1max(maps, masks)
    assert pm["pixel_aupro"] == pixel_aupro(maps, masks, fpr_limit=0.2)
    assert pixel_aupro(maps, masks, fpr_limit=np.float32(0.5)) == pixel_aupro(maps, masks, fpr_limit=float(np.float32(0.5)))


def test_perfect_and_worst_maps():
    _, masks = pixel_data(11)
    perfect = masks.astype(np.float32)
    for f in (pixel_auroc, pixel_ap, pixel_f1max, pixel_aupro): assert f(perfect, masks) == 1.0
    assert pixel_auroc(1 - perfect, masks) == 0.0
    assert pixel_aupro(1 - perfect, masks) == 0.0


# ---------------------------------------------------------------- undefined cases

def test_undefined_cases_are_nan():
    s = np.array([0.1, 0.5, 0.3])
    for f in (image_auroc, image_ap, image_f1max): assert math.isnan(f(s, [0, 0, 0]))
    assert math.isnan(image_auroc(s, [1, 1, 1]))
    assert image_ap(s, [1, 1, 1]) == 1.0 and image_f1max(s, [1, 1, 1]) == 1.0
    maps = np.random.default_rng(0).random((3, 8, 8))
    normal = np.zeros((3, 8, 8), bool)
    for f in (pixel_auroc, pixel_ap, pixel_f1max, pixel_aupro): assert math.isnan(f(maps, normal))
    assert math.isnan(pixel_auroc(maps, ~normal)) and math.isnan(pixel_aupro(maps, ~normal))
    assert all(math.isnan(v) for v in pixel_metrics(maps, normal).values())


def test_constant_scores_match_sklearn():
    s, y = np.full(10, 0.7), np.arange(10) % 3 == 0
    assert image_auroc(s, y) == 0.5 == roc_auc_score(y, s)
    assert abs(image_ap(s, y) - average_precision_score(y, s)) < 1e-12
    maps, masks = np.zeros((2, 8, 8), np.float32), pixel_data(0, n=2, size=8)[1]
    assert pixel_auroc(maps, masks) == 0.5
    assert abs(pixel_aupro(maps, masks) - ref_aupro(maps, masks)) < 1e-12  # one step (0,0)-(1,1): 0.15


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,msg", [
    (lambda: image_auroc([0.1, np.nan], [0, 1]), "scores contains NaN or infinite values (first at index 1)"),
    (lambda: image_ap([0.1, np.inf], [0, 1]), "scores contains NaN"),
    (lambda: image_f1max([0.1, 0.2], [0, 2]), "labels must be binary"),
    (lambda: image_auroc([0.1, 0.2], [0, 0.5]), "labels must be binary"),
    (lambda: image_auroc([0.1, 0.2], [0, 1, 1]), "labels has 3 entries but scores has 2"),
    (lambda: image_auroc(np.zeros((2, 1)), [0, 1]), "scores must have shape [N]"),
    (lambda: image_auroc([], []), "scores is empty"),
    (lambda: image_auroc(["a", "b"], [0, 1]), "scores must hold real numbers"),
    (lambda: pixel_auroc(np.zeros((2, 4, 4)), np.zeros((2, 4, 5))), "masks has shape (2, 4, 5) but maps has shape (2, 4, 4)"),
    (lambda: pixel_ap(np.zeros((4, 4)), np.zeros((4, 4))), "maps must have shape [N, H, W]"),
    (lambda: pixel_f1max(np.zeros((1, 4, 4)), np.zeros((1, 1, 4, 4))), "masks must have shape [N, H, W]"),
    (lambda: pixel_aupro(np.zeros((1, 4, 4)), np.full((1, 4, 4), 255)), "masks must be binary"),
    (lambda: pixel_aupro(np.zeros((1, 4, 4)), np.full((1, 4, 4), np.nan)), "masks must be binary"),
    (lambda: pixel_aupro(np.stack([np.zeros((4, 4)), np.full((4, 4), np.nan)]), np.ones((2, 4, 4))),
     "maps contains NaN or infinite values (first at map 1)"),
    (lambda: pixel_aupro(np.zeros((0, 4, 4)), np.zeros((0, 4, 4))), "maps is empty"),
    (lambda: pixel_aupro(np.zeros((1, 4, 4)), np.ones((1, 4, 4)), fpr_limit=0), "fpr_limit must be a number in (0, 1]"),
    (lambda: pixel_aupro(np.zeros((1, 4, 4)), np.ones((1, 4, 4)), fpr_limit=1.5), "fpr_limit must be"),
    (lambda: pixel_aupro(np.zeros((1, 4, 4)), np.ones((1, 4, 4)), fpr_limit=float("nan")), "fpr_limit must be"),
    (lambda: pro_curve(np.zeros((1, 4, 4)), np.zeros((1, 4, 4))), "masks must contain anomalous and normal pixels"),
])
def test_bad_input_raises_value_error_naming_the_argument(call, msg):
    with pytest.raises(ValueError) as e: call()
    assert msg in str(e.value)


# ---------------------------------------------------------------- torch

def test_torch_input_equals_numpy_input():
    maps, masks = pixel_data(12)
    tm, tk = torch.from_numpy(maps), torch.from_numpy(masks)
    assert pixel_metrics(tm, tk) == pixel_metrics(maps, masks)
    assert pixel_metrics(tm, tk.float()) == pixel_metrics(maps, masks)
    assert pixel_metrics(tm.double(), tk.long()) == pixel_metrics(maps.astype(np.float64), masks)
    half = tm.half()
    assert pixel_metrics(half, tk) == pixel_metrics(half.float().numpy(), masks)
    assert pixel_metrics(tm.bfloat16(), tk) == pixel_metrics(tm.bfloat16().float().numpy(), masks)
    s, y = image_data(12)
    assert image_metrics(torch.tensor(s), torch.tensor(y)) == image_metrics(s, y)
    assert image_metrics(torch.tensor(s, dtype=torch.float64), torch.tensor(y).long()) == image_metrics(s, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tensors_are_accepted():
    maps, masks = pixel_data(13)
    assert pixel_metrics(torch.from_numpy(maps).cuda(), torch.from_numpy(masks).cuda()) == pixel_metrics(maps, masks)
