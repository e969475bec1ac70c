"""How the modules depend on each other: a notebook's module imports only modules of earlier notebooks, and the
model (and what it imports) never loads an HTTP client (the chat-completions client is plumbing for building knowledge,
not part of the method)."""
import ast
import json
import re
import subprocess
import sys

from conftest import REPO

PKG = REPO / "kanoclip"
HTTP_CLIENTS = {"http.client", "urllib.request", "requests", "httpx", "aiohttp", "kanoclip.chat"}  # what chat.py sends with


def notebook_number(module: str) -> int:
    "The number of the notebook `kanoclip.<module>` is exported from (`# ... File to edit: ../nbs/NN_name.ipynb`)."
    head = (PKG / f"{module}.py").read_text().split("\n", 4)[:4]
    found = [re.search(r"File to edit: \.\./nbs/(\d+)_\w+\.ipynb", line) for line in head]
    return int(next(m for m in found if m).group(1))


def imports(module: str) -> set[str]:
    """Every module `kanoclip.<module>` imports, at the top or inside a function. nbdev exports `from kanoclip.x import`
    as the relative `from .x import`: those count as `kanoclip.x`, and `from . import x` as `kanoclip.x`."""
    tree = ast.parse((PKG / f"{module}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import): out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level in (0, 1):
            base = node.module if node.level == 0 else "kanoclip" + (f".{node.module}" if node.module else "")
            if base is None: continue
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names if base == "kanoclip"}
    return out


def modules() -> list[str]:
    return sorted(p.stem for p in PKG.glob("*.py") if not p.stem.startswith("_"))


def test_imports_sees_relative_imports():
    "The exported modules import each other relatively (`from .data import ...`): the check must see those."
    assert {"kanoclip.data", "kanoclip.chat", "kanoclip.knowledge"} <= imports("describe")


def test_no_module_imports_a_later_notebook():
    bad = []
    for m in modules():
        for dep in imports(m):
            name = dep.split(".")[1] if dep.startswith("kanoclip.") else None
            if name in modules() and notebook_number(name) > notebook_number(m): bad.append(f"{m} imports {name}")
    assert not bad, bad


def test_model_never_loads_an_http_client():
    "Neither kanoclip.model nor any kanoclip module it loads imports an HTTP client, and kanoclip.chat stays unloaded."
    code = "import sys, json, kanoclip.model; print(json.dumps(sorted(m for m in sys.modules if m.startswith('kanoclip.'))))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=REPO).stdout)
    assert "kanoclip.knowledge" in loaded and "kanoclip.chat" not in loaded, loaded
    for m in loaded:
        name = m.split(".")[1]
        if name.startswith("_"): continue
        http = {d for d in imports(name) if any(d == c or d.startswith(c + ".") for c in HTTP_CLIENTS)}
        assert not http, f"{m} imports {sorted(http)}"


def test_the_check_sees_the_chat_client():
    "The checks above are not vacuous: the chat client does import the HTTP modules they look for."
    assert {"http.client", "urllib.request"} <= imports("chat")
    assert notebook_number("chat") > notebook_number("knowledge")
