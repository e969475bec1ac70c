"README.md is rendered from nbs/index.ipynb, and its quick start is the two commands CI and users run."
import re
import subprocess
import sys

from conftest import REPO


def render_index() -> str:
    "Render nbs/index.ipynb to markdown exactly as the developer instructions in README.md say."
    out = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "markdown", "--stdout",
                          str(REPO / "nbs" / "index.ipynb")], capture_output=True, text=True, check=True)
    return out.stdout


def quick_start() -> list[str]:
    "The commands of the first shell block under '## Quick start' in README.md."
    text = (REPO / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [l for l in block.splitlines() if l.strip()]


def test_readme_is_rendered_from_index():
    assert render_index() == (REPO / "README.md").read_text(), \
        "README.md differs from nbs/index.ipynb: run `jupyter nbconvert --to markdown --stdout nbs/index.ipynb > README.md`"


def test_quick_start_has_two_commands():
    install, test = quick_start()
    assert install.startswith('pip install -e ".[dev]"') and "kanoclip demo" in install
    assert "nbdev_test" in test and "pytest tests" in test


def test_ci_runs_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "quick_start_test_command" in ci
    out = subprocess.run(["bash", "-c", ci.split("# --- extract ---")[1].split("# --- end ---")[0]
                          + '\necho "$test_cmd"'], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == quick_start()[1]
