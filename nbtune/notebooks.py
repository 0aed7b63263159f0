"""Run a notebook headless in a real Jupyter kernel (nbclient), with parameters, and keep the result.

Used by the README's main job (the quickstart), by the tests and by CI for the tutorials. A cell tagged
``parameters`` may be overridden: the given values are set in a cell inserted right after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def inject_parameters(nb, parameters: dict[str, Any]) -> None:
    """Insert ``NAME = value`` assignments after the cell tagged 'parameters' (or at the top)."""
    import nbformat

    if not parameters:
        return
    source = "# injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    index = next((i + 1 for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    nb.cells.insert(index, cell)


def execute(path: str | Path, out_dir: str | Path | None = None, parameters: dict[str, Any] | None = None,
            timeout: int = 900, html: bool = True, cwd: str | Path | None = None, kernel_name: str = "python3"):
    """Execute the notebook at ``path``; return (executed notebook, path written or None, html path or None).

    ``kernel_name`` picks the kernel spec (the tests run hosted runtimes' environments through their own spec).

    A cell error raises ``nbclient.exceptions.CellExecutionError`` naming the cell.
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, parameters or {})
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, store_widget_state=True,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    client.execute()
    written = html_path = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = out_dir / path.name
        nbformat.write(nb, written)
        if html:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_notebook_node(nb)
            html_path = out_dir / (path.stem + ".html")
            html_path.write_text(body)
    return nb, written, html_path


def outputs(nb, kind: str | None = None) -> list[dict[str, Any]]:
    """Every output of every code cell (optionally only those holding MIME type ``kind`` or stream text)."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind is None or kind in out.get("data", {}) or (kind == "stream" and out.get("output_type") == "stream"):
                found.append(out)
    return found


def install_cell(repository: str, extras: tuple[str, ...] = ("models",)) -> str:
    """The first code cell of every tutorial: installs nbtune from ``repository`` where it is missing (Colab,
    Kaggle), raises if pip fails (so Run All stops there, not three cells later), needs no runtime restart and
    checks the import. ``extras``: the optional dependency groups it needs (the LLM tutorials add ``llm``,
    bitsandbytes). ``tests/test_notebook_links.py`` keeps every notebook's cell equal to this."""
    return (
        "# Colab / Kaggle: install nbtune and its default model from the repository (skipped where it is installed).\n"
        "import importlib, importlib.util, subprocess, sys\n"
        "if importlib.util.find_spec(\"nbtune\") is None:\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    \"nbtune[{','.join(extras)}] @ git+{repository}\"], check=True)  # a failed install stops here\n"
        "    importlib.invalidate_caches()\n"
        "import nbtune\n"
        "print(\"nbtune\", nbtune.__version__)"
    )


def static_copy(nb):
    """``nb`` as a notebook to commit or share: no widget state (often 100+ KB) and no widget views, which no viewer
    can draw without that state; nbtune's static pictures stay (the dashboard's final picture, the outputs that
    follow the freezer and the adapter panel). Returns ``nb`` (changed)."""
    from nbtune.ui.display import WIDGET_VIEW

    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            out.get("data", {}).pop(WIDGET_VIEW, None)  # without the state no viewer can draw it
    return nb
