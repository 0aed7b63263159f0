"""Every code example in the README and docs/ runs as written: each page's blocks, in order, in one real kernel
(Python and magics as cells, shell blocks through the shell, failing on a non-zero exit).

A block may be left out only with a comment right above it that says why, and only a shell block (installing
from the index, the README's own commands, several GPUs or machines):
``<!-- not run by the tests: REASON -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from nbtune.notebooks import execute

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- not run by the tests: (?P<reason>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)
# Test plumbing, not page content: the kernel's own command-line tools (nbtune, accelerate) on PATH.
PREAMBLE = "import os, sys\nos.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH']"


@dataclass
class Block:
    lang: str
    code: str
    skipped: str | None

    @property
    def is_shell(self) -> bool:
        return self.lang in ("bash", "sh", "shell")


def blocks(page: Path) -> list[Block]:
    return [Block(m["lang"], m["code"], m["reason"]) for m in BLOCK.finditer(page.read_text())]


def _cell(block: Block) -> str:
    if not block.is_shell:
        return block.code
    # one command per line, through the shell (comments are the shell's), stopping at the first failure
    commands = [line for line in block.code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return "import subprocess\n" + "\n".join(f"subprocess.run({c!r}, shell=True, check=True)" for c in commands)


def test_every_block_is_an_example_that_runs_or_says_why_not():
    for page in PAGES:
        for block in blocks(page):
            assert block.lang in ("python", "bash", "yaml", ""), (page.name, block.lang)
            if block.lang in ("yaml", ""):
                assert block.code.startswith("%"), (page.name, block.code[:60])  # magics, run in the kernel
            if block.skipped is not None:
                assert block.skipped.strip() and block.is_shell, (page.name, block.code[:60])


RUNNABLE = [p for p in PAGES if any(b.skipped is None for b in blocks(p))]


@pytest.mark.kernel
@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=[p.name for p in RUNNABLE])
def test_page_examples_run(page, tmp_path):
    cells = [nbformat.v4.new_code_cell(PREAMBLE)]
    cells += [nbformat.v4.new_code_cell(_cell(b)) for b in blocks(page) if b.skipped is None]
    notebook = tmp_path / f"{page.stem}.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), notebook)
    work = tmp_path / "work"
    work.mkdir()
    execute(notebook, cwd=work, timeout=900)  # a failing block raises CellExecutionError naming it
