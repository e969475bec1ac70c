"""The notebooks are committed with their outputs, so that they read on the repository page: every cell that draws
a figure shows it, every tutorial shows something, and the committed outputs of the deterministic notebooks equal a
fresh run. Refresh them with `python tools/render_nbs.py` (see its docstring)."""
import json
import re
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import render_nbs  # noqa: E402

NBS = sorted(p for p in (REPO / "nbs").glob("*.ipynb") if p.name != "index.ipynb")
DRAWS = re.compile(r"^(?:\w+(?:, ?\w+)* = )?plt\.(?:subplots|figure)\(", re.M)   # a figure made at the top level
SHOWS = re.compile(r"^(?:.*; )?plt\.show\(\)", re.M)                              # ... and shown at the top level
# Notebooks whose every printed output is deterministic and cheap to recompute (a fresh run must print the same).
FRESH = ["07_losses", "11_metrics", "14_viz", "16_evaluate", "20_cli"]


def code_cells(path):
    "(index, source, outputs) of the code cells of `path` that `nbdev_test` runs."
    for i, c in enumerate(json.loads(path.read_text())["cells"]):
        src = "".join(c["source"])
        if c["cell_type"] == "code" and render_nbs.runs(src):
            yield i, src, c.get("outputs", [])


def has_image(outputs) -> bool: return any("image/png" in (o.get("data") or {}) for o in outputs)


def test_every_figure_is_shown():
    "A cell that makes a figure also shows it (`plt.show()`), and its committed output holds the picture."
    bad = []
    for p in NBS:
        for i, src, outs in code_cells(p):
            if DRAWS.search(src) and not SHOWS.search(src): bad.append(f"{p.name} cell {i}: makes a figure but never shows it")
            elif SHOWS.search(src) and not has_image(outs): bad.append(f"{p.name} cell {i}: no picture in its outputs")
    assert not bad, "\n".join(bad) + "\nrun: python tools/render_nbs.py"


def test_every_tutorial_has_outputs():
    "Every notebook a reader opens shows something it computed (the GPU notebooks: their CPU-run parts)."
    empty = [p.name for p in NBS if not any(outs for _, _, outs in code_cells(p))]
    assert not empty, f"committed without outputs: {empty}; run: python tools/render_nbs.py"


def test_outputs_carry_no_machine_paths():
    "No home folder, temporary folder or checkout path, and no progress bar, in a committed output."
    bad = []
    for p in NBS:
        for i, _, outs in code_cells(p):
            for o in outs:
                text = "".join(o.get("text", "")) + "".join("".join(v) for k, v in (o.get("data") or {}).items() if k.startswith("text/"))
                if render_nbs.scrub_text(text) != text or "it/s]" in text or "\r" in text:
                    bad.append(f"{p.name} cell {i}: {text[:120]!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", FRESH)
def test_outputs_are_not_stale(name):
    "A fresh run of the notebook prints exactly what is committed."
    r = subprocess.run([sys.executable, str(REPO / "tools" / "render_nbs.py"), "--check", f"nbs/{name}.ipynb"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
