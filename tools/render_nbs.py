"""Execute the notebooks and store their outputs in place, so that they read on the repository page.

    python tools/render_nbs.py                  # every notebook in nbs/ (index.ipynb too)
    python tools/render_nbs.py nbs/11_metrics.ipynb nbs/14_viz.ipynb
    python tools/render_nbs.py --check nbs/11_metrics.ipynb   # exit 1 if a fresh run prints something else

Cells flagged with one of settings.ini's `tst_flags` (`#|slow`, `#|gpu`) or `#|eval: false` are not run, exactly
as `nbdev_test` skips them (directives read by nbdev's own `extract_directives`), so their committed outputs stay
empty. The stored outputs are made reproducible and light:

- each notebook in a fresh process, on one thread, with Python's, numpy's and torch's generators seeded with 0
  before its first cell, so numbers repeat run after run (`tests/test_rendered.py` checks the deterministic
  notebooks against a fresh run);
- no progress bars (`TQDM_DISABLE=1`, and the bars of code that asks for them are dropped), no machine paths
  (the repository, temporary folders and the home folder are replaced by `<repo>`, `<tmp>` and `~`);
- figures as plain PNG (not retina), re-encoded with a 256-colour palette.

After rendering, `nbdev_clean` removes execution counts and metadata; commit the notebooks.
"""
from __future__ import annotations
import base64, io, os, re, subprocess, sys, tempfile
from pathlib import Path

from fastcore.basics import AttrDict
from nbdev.config import get_config
from nbdev.process import extract_directives

REPO = Path(__file__).resolve().parents[1]
SKIP_FLAGS = set(get_config(path=REPO).tst_flags.split())   # the flags nbdev_test skips (settings.ini: slow, gpu)


def configure_env():
    "The environment every rendered (and re-checked) notebook runs in."
    os.environ.update(TQDM_DISABLE="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                      PYTHONHASHSEED="0", MPLBACKEND="module://matplotlib_inline.backend_inline")
    import torch
    torch.set_num_threads(1)


def directives(source: str) -> dict:
    "The nbdev directives (`#| name args`) at the top of a cell's source, as nbdev itself reads them."
    return extract_directives(AttrDict(source=source), remove=False)


def runs(source: str) -> bool:
    "Whether `nbdev_test` runs a code cell with this source (no flag of `tst_flags`, not `eval: false`, no nbdev_export call)."
    d = directives(source)
    return not (SKIP_FLAGS & set(d) or d.get("eval:", [""])[0].lower() == "false" or "nbdev_export(" in source)


def skipped(cell) -> bool:
    "True for the cells `nbdev_test` does not run (markdown cells too)."
    return cell.cell_type != "code" or not runs(cell.source)


_TMP = re.compile(r"(?:/private)?(?:/tmp|/var/folders/[\w/]+?/T|%s)/[\w.@+-]+" % re.escape(tempfile.gettempdir()))


_BAR = re.compile(r"\d+%\||[\d.?]+(?:it|img|s)/(?:s|it)\]")   # a tqdm progress bar


def drop_progress_bars(s: str) -> str:
    "Printed text without progress bars: a line redrawn with carriage returns keeps its final state, unless that is a bar."
    lines = []
    for line in s.split("\n"):
        if "\r" in line: line = line.rstrip("\r").rsplit("\r", 1)[-1]
        if not _BAR.search(line) and not (lines and not line.strip() and not lines[-1].strip()): lines.append(line)
    return "\n".join(lines)


def scrub_text(s: str) -> str:
    "Replace machine-specific paths in printed text, and drop progress bars."
    s = drop_progress_bars(s)
    s = s.replace(str(REPO), "<repo>")
    s = _TMP.sub("<tmp>", s)
    return s.replace(str(Path.home()), "~")


def light_png(b64: str) -> str:
    "A PNG re-encoded with a 256-colour palette (adaptive), as base64."
    from PIL import Image
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    im = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    im.save(buf, format="png", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def scrub_outputs(cell):
    "Make one executed cell's outputs reproducible and light (see the module docstring)."
    for o in cell.get("outputs", []):
        if "text" in o:
            o["text"] = scrub_text("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
        for k, v in (o.get("data") or {}).items():
            if k == "image/png":
                o["data"][k] = light_png(v)
            elif k.startswith("text/"):
                o["data"][k] = scrub_text("".join(v) if isinstance(v, list) else v)
        if o.get("output_type") == "error":
            raise RuntimeError(f"cell failed: {o.get('ename')}: {o.get('evalue')}")


def execute(path: Path):
    "Run the notebook at `path` the way `nbdev_test` does and return it with scrubbed outputs."
    from execnb.nbio import read_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    nb = read_nb(path)
    for c in nb.cells:
        if c.cell_type == "code":
            c["outputs"] = []
    shell = CaptureShell(path, mpl_format="png")
    shell.run("import random, numpy, torch; random.seed(0); numpy.random.seed(0); torch.manual_seed(0)")
    with working_directory(path.parent):
        shell.run_all(nb, exc_stop=True, preproc=skipped)
    for c in nb.cells:
        if c.cell_type == "code":
            scrub_outputs(c)
    return nb


def text_outputs(cell) -> list[str]:
    "What a cell printed or displayed as text, and `<image>` for each figure: the part a fresh run must repeat."
    out = []
    for o in cell.get("outputs", []):
        if "text" in o: out.append("".join(o["text"]) if isinstance(o["text"], list) else o["text"])
        data = o.get("data") or {}
        if "image/png" in data: out.append("<image>")
        elif data: out.append("".join(data.get("text/markdown", data.get("text/plain", ""))))
    return out


def stale_cells(path: Path) -> list[str]:
    "The cells of `path` whose committed outputs differ from a fresh run's, each with the first difference."
    from execnb.nbio import read_nb
    old, new = read_nb(path).cells, execute(path).cells
    diffs = []
    for i, (a, b) in enumerate(zip(old, new)):
        ta, tb = text_outputs(a), text_outputs(b)
        if ta != tb: diffs.append(f"{path.name} cell {i}: committed {ta!r:.300} != fresh {tb!r:.300}")
    return diffs


def render(path: Path):
    "Execute `path` and write it back with its outputs."
    from execnb.nbio import write_nb
    write_nb(execute(path), path)


def run_one(path: Path, check: bool) -> bool:
    "Render (or `check`) one notebook in this process; False if a check found stale outputs."
    configure_env()
    if check:
        diffs = stale_cells(path)
        print("\n".join(diffs) or f"up to date: {path.name}")
        return not diffs
    render(path)
    return True


def main(argv):
    "Each notebook runs in a fresh Python process, as a reader's kernel would: no state carries over between them."
    check, child = "--check" in argv, "--child" in argv
    paths = [Path(p).resolve() for p in argv if not p.startswith("--")] or sorted((REPO / "nbs").glob("*.ipynb"))
    if child: sys.exit(0 if run_one(paths[0], check) else 1)
    ok = True
    for p in paths:
        if not check: print(f"rendering {p.relative_to(REPO)}", flush=True)
        r = subprocess.run([sys.executable, __file__, "--child", *(["--check"] if check else []), str(p)])
        if r.returncode and not check: sys.exit(f"rendering {p.relative_to(REPO)} failed")
        ok &= r.returncode == 0
    if check: sys.exit(0 if ok else 1)
    os.chdir(REPO)
    from nbdev.clean import nbdev_clean
    nbdev_clean()


if __name__ == "__main__":
    main(sys.argv[1:])
