"""Every tutorial opens in Colab and Kaggle: badge links in each service's documented form, built from the
repository URL written once in pyproject.toml."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the optional dependency groups a tutorial installs beyond the default model: 4-bit loading (bitsandbytes) for the
# LLM tutorials, torchvision and timm for images
EXTRAS = {"causal_lm_lora": ("models", "llm"), "preference_tuning": ("models", "llm"),
          "image_classification": ("models", "vision")}


def test_badges_use_the_documented_forms():
    # read with a pattern, not tomllib: the tests run on Python 3.10 too
    repo = re.search(r'^Repository = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    owner_repo = repo.removeprefix("https://github.com/")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        first = "".join(json.loads(path.read_text())["cells"][0]["source"])
        links = re.findall(r"\]\((https://[^)\s]+)\)", first)
        rel = f"notebooks/{path.name}"
        # Colab: colab.research.google.com/github/OWNER/REPO/blob/BRANCH/PATH; Kaggle: kernels/welcome?src=<GitHub URL>
        assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/{rel}" in links, path.name
        assert f"https://kaggle.com/kernels/welcome?src={repo}/blob/main/{rel}" in links, path.name


def test_every_tutorial_installs_nbtune_with_the_one_install_cell():
    from nbtune.notebooks import install_cell

    repo = re.search(r'^Repository = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        extras = EXTRAS.get(path.stem, ("models",))
        assert "".join(first_code["source"]) == install_cell(repo, extras), path.name


def test_committed_notebooks_keep_static_pictures_not_widget_state():
    """Widget state is 100+ KB per notebook and useless without the kernel; a widget view without its model
    renders as "Error displaying widget: model not found". nbtune.notebooks.static_copy strips both."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        assert "widgets" not in nb["metadata"], path.name
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                assert "application/vnd.jupyter.widget-view+json" not in out.get("data", {}), path.name
