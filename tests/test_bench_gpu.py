"`benchmarks/bench_gpu.py --smoke`: the GPU check's code runs on the CPU (tiny backbone) and prints its whole table."
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (part, measurement) of every row, numbers left out; each row's value, and its check where it has one
ROWS = [("predict", w) for b in (2, 4) for w in (f"batch {b}, fp32: images/s (model only)",
                                                   f"batch {b}, bf16: images/s (model only)", f"batch {b}: bf16 speed-up over fp32")] + [
    ("predict", "bf16 vs fp32, 8 images: largest map difference"), ("predict", "bf16 vs fp32: Spearman of image scores")] + [
    ("train", f"amp + compile {f}: {m}") for f in ("off", "on") for m in (
        "steps/s after 5 steps (6 steps)", "first step (compiles when on), s", "peak GPU memory", "every loss finite")] + [
    ("train", "total loss, on vs off: largest relative difference over the steps"),
    ("evaluate", "loader alone, 0 workers: images/s"), ("evaluate", "loader alone, 2 workers: images/s"),
    ("evaluate", "fewest workers whose loader outruns the model"), ("evaluate", "evaluate() end to end, bf16"),
    ("metrics", "class_metrics of 24 maps of 112 x 112 on cpu tensors, 3 classes: s")]
# rows with a check: map difference, Spearman, finite losses (x2), loss curves, evaluate's metrics, metrics
CHECKED = 7


def test_bench_gpu_smoke():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "benchmarks/bench_gpu.py", "--smoke"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [[c.strip() for c in l.strip("|").split("|")] for l in r.stdout.splitlines() if re.match(r"\| (predict|train|evaluate|metrics) ", l)]
    assert len(rows) == len(ROWS)
    for (part, what, value, check), (want_part, want_what) in zip(rows, ROWS):
        assert part == want_part and what.startswith(want_what), (part, what)
        assert re.fullmatch(r"x?\d+(\.\d+)?|yes|n/a \(CPU\)", value), (what, value)
        assert check == "" or check.endswith(": ok"), (what, check)
    assert sum(c.endswith(": ok") for *_, c in rows) == CHECKED
    assert "all checks passed" in r.stdout
