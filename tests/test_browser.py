"""nbtune in a real browser: JupyterLab 4 and Notebook 7 on 127.0.0.1, Debian's chromium driven by Playwright.

The quickstart runs through the Run menu; the freezing widget's checkboxes and the adapter panel's button are
clicked with the mouse and the kernel's model is checked; Stop is clicked mid-run; the saved notebook must keep
the static pictures; the browser console must stay free of errors from nbtune's outputs. Screenshots land in
test-artifacts/browser/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from browser_helpers import copy_notebook, jupyter_server, open_notebook, require_browser

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def _browser():
    require_browser()


def _write(folder: Path, name: str, cells: list[str]) -> tuple[str, int]:
    """A notebook of ``cells`` with a kernel spec, so the page opens it without asking which kernel to start."""
    kernelspec = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells],
                                  metadata={"kernelspec": kernelspec})
    nbformat.write(nb, folder / name)
    return name, len(cells)


def _paced_training(model_dir: Path, rows: int) -> str:
    """A cell training the tiny BERT on ``rows`` toy rows (batch 8) with the live dashboard, 50 ms per step."""
    return (f"import sys, time\nsys.path.insert(0, {str(TESTS)!r})\nimport nbtune\nfrom training_helpers import toy_rows\n"
            "from nbtune.core.training.events import StepEnded\n"
            f"s = nbtune.load({str(model_dir)!r}, task='text-classification', num_labels=2)\n"
            "def pace(event, control):\n    if isinstance(event, StepEnded):\n        time.sleep(0.05)\n"
            f"run = s.train(toy_rows({rows}), epochs=1, batch_size=8, callbacks=[pace])")


def _check_export(notebook: Path, folder: Path) -> None:
    from nbconvert import HTMLExporter
    from playwright.sync_api import sync_playwright

    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, shoot_page

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, 4))
    page_file = folder / "export.html"
    page_file.write_text(body)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(page_file.as_uri())
            curves = page.locator("img[alt$='loss curves']")
            assert curves.count() >= 1 and curves.first.evaluate("img => img.naturalWidth") > 0
            freezer = page.locator(".nbtune-freezer").first
            assert freezer.is_visible() and "trainable" in freezer.inner_text()
            shoot_page(freezer, "export-freezer")
            shoot_page(curves.first, "export-dashboard")
        finally:
            browser.close()


def _saved_outputs(path: Path) -> list[dict]:
    return [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_quickstart_runs_in_the_browser_and_saves_its_pictures(app, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    copy_notebook(ROOT / "notebooks" / "quickstart.ipynb", root, {"EPOCHS": 1})
    cells = len(nbformat.read(root / "quickstart.ipynb", 4).cells)
    with jupyter_server(app, root, env={**ENV, "NBTUNE_RUNS_DIR": str(tmp_path / "runs")}) as (base, token):
        with open_notebook(base, token, app, "quickstart.ipynb", cells) as nb:
            seconds = nb.run_all()
            assert not [e for e in nb.errors_in_outputs() if "Error" in e or "Traceback" in e], nb.errors_in_outputs()
            curves = nb.page.locator("img[alt$='loss curves']")
            assert curves.count() >= 1  # the live dashboard was replaced by its final picture
            nb.shoot(curves.first, "dashboard")
            freezer = nb.page.locator(".jp-OutputArea-output:has(.widget-checkbox)").last
            nb.shoot(freezer, "freezer")
            nb.shoot(nb.page.locator(".nbtune-tree").first, "layer-tree")  # one table: columns align at every depth
            light = nb.lowest_contrast()
            if app == "lab":  # the same outputs under JupyterLab's dark theme
                nb.menu("Settings", "Theme", "JupyterLab Dark")
                nb.page.wait_for_timeout(1500)
                nb.shoot(freezer, "freezer-dark")
                dark = nb.lowest_contrast()
                assert dark[0] >= 4.5, dark
            assert light[0] >= 4.5, light
            nb.save()
            assert nb.new_console_errors() == []
    print(f"{app}: quickstart ran in {seconds:.1f} s")
    if app == "lab":  # the saved notebook as nbconvert's HTML, opened in the browser: the pictures show
        _check_export(root / "quickstart.ipynb", tmp_path)
    saved = _saved_outputs(root / "quickstart.ipynb")
    htmls = ["".join(o["data"]["text/html"]) for o in saved if "text/html" in o.get("data", {})]
    assert any("nbtune-dashboard" in h and "data:image/png" in h for h in htmls)  # the final curves, saved
    assert any("nbtune-freezer" in h for h in htmls)  # the freezing widget's static picture beside its view
    assert not any("image/png" in o.get("data", {}) for o in saved)  # one copy of each image


def test_freezer_checkboxes_and_adapter_panel_change_the_kernel_model(tmp_path, tiny_dirs):
    root = tmp_path / "root"
    root.mkdir()
    name, cells = _write(root, "clicks.ipynb", [
        f"import nbtune\nfrom nbtune.ui import AdapterPanel, LayerFreezer\n"
        f"s = nbtune.load({str(tiny_dirs['bert'])!r}, task='text-classification', num_labels=2)\n"
        "s.freeze('all')\nw = LayerFreezer(s)\nw",
        "print('TRAINABLE', s.summary().trainable)",
        "panel = AdapterPanel(s)\npanel",
        "print('ADAPTERS', [a.name for a in s.adapters], s.summary().trainable)",
    ])
    with jupyter_server("lab", root, env=ENV) as (base, token):
        with open_notebook(base, token, "lab", name, cells) as nb:
            nb.run_cell(0)
            widget = nb.output(0)
            classifier = nb.freezer_row(0, "classifier")
            classifier.locator("input[type=checkbox]").click()  # tick: train the head
            nb.run_cell(1)
            assert nb.output_text(1).split() == ["TRAINABLE", "66"]
            nb.shoot(widget, "ticked-head")
            classifier.locator("input[type=checkbox]").click()  # untick: frozen again
            nb.run_cell(1)
            assert nb.output_text(1).split() == ["TRAINABLE", "0"]
            bert_row = nb.freezer_row(0, "bert")
            bert_row.locator("button").click()  # open the row: its children appear
            embeddings = nb.freezer_row(0, "embeddings")
            embeddings.locator("input[type=checkbox]").click()
            nb.run_cell(1)
            assert int(nb.output_text(1).split()[1]) > 0
            nb.shoot(widget, "ticked-embeddings")
            nb.run_cell(2)
            nb.output(2).locator("button:has-text('Attach')").click()
            nb.page.wait_for_selector("text=attached default", timeout=30_000)
            nb.run_cell(3)
            assert nb.output_text(3).startswith("ADAPTERS ['default']")
            nb.shoot(nb.output(2), "adapter-panel")
            # with a kernel the page shows the widgets, not their pictures
            assert not nb.output(0).locator(".nbtune-freezer").is_visible()
            assert widget.locator(".widget-checkbox").first.is_visible()
            assert nb.new_console_errors() == []
            nb.save()
            nb.menu("Kernel", "Shut Down Kernel")
            nb.page.wait_for_timeout(2000)
            nb.page.reload()  # the notebook as it is reopened later: no kernel, no widget models
            nb.page.wait_for_function("() => document.querySelectorAll('.jp-Notebook .jp-Cell').length >= 4",
                                      timeout=60_000)
            nb.page.wait_for_timeout(4000)  # the widget manager gives up on the models after about 2 s
            nb.shoot(nb.output(0), "reopened-freezer")
            text = nb.page.locator(".jp-Notebook").inner_text()
            assert "Error displaying widget" not in text
            assert nb.output(0).locator(".nbtune-freezer").is_visible()  # the picture instead
            assert nb.output(2).locator(".nbtune-adapters").is_visible()


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_stop_button_ends_a_busy_cell_within_five_seconds(app, tmp_path, tiny_dirs):
    root = tmp_path / "root"
    root.mkdir()
    name, cells = _write(root, "stop.ipynb", [
        _paced_training(tiny_dirs["bert"], 3200), "print('RESULT', run.reason, '|', run.steps, '|', len(s.history.losses()))",
    ])
    with jupyter_server(app, root, env={**ENV, "NBTUNE_RUNS_DIR": str(tmp_path / "runs")}) as (base, token):
        with open_notebook(base, token, app, name, cells) as nb:
            nb.run_cell(0, wait=False)
            stop = nb.output(0).locator("button:has-text('Stop')")
            stop.wait_for(timeout=120_000)
            nb.page.wait_for_function(
                "() => /step [3-9]|step \\d\\d/.test(document.querySelector('.jp-Notebook').innerText)", timeout=60_000)
            busy = nb.kernel_status()
            nb.shoot(nb.output(0), "before-stop")
            clicked = time.monotonic()
            stop.click()
            nb.page.wait_for_function(
                "() => /\\[\\d+\\]/.test(document.querySelectorAll('.jp-Notebook .jp-Cell')[0]"
                ".querySelector('.jp-InputPrompt').textContent)", timeout=30_000)
            seconds = time.monotonic() - clicked
            nb.shoot(nb.output(0), "after-stop")
            nb.run_cell(1)
            result = nb.output_text(1).strip().split(" | ")
            assert nb.new_console_errors() == []
    print(f"{app}: the cell ended {seconds:.2f} s after the click")
    assert busy == "busy"  # the page showed the kernel busy during the first training of the kernel
    assert seconds < 5
    assert result[0] == "RESULT stopped by the Stop button" and 0 < int(result[1]) < 400 and result[1] == result[2]


def test_a_page_reloaded_mid_run_shows_the_final_picture(tmp_path, tiny_dirs):
    """Reloading the page during training loses the output's display id, so the final replacement never arrives;
    the dashboard widget, redrawn from the kernel after the reload, shows the final curves itself."""
    root = tmp_path / "root"
    root.mkdir()
    name, cells = _write(root, "reload.ipynb", [_paced_training(tiny_dirs["bert"], 1280)])
    with jupyter_server("lab", root, env={**ENV, "NBTUNE_RUNS_DIR": str(tmp_path / "runs")}) as (base, token):
        with open_notebook(base, token, "lab", name, cells) as nb:
            nb.run_cell(0, wait=False)
            nb.output(0).locator("button:has-text('Stop')").wait_for(timeout=120_000)
            nb.save()  # what an autosave does: the page that comes back shows the output it saved
            deadline = time.time() + 30
            while "nbtune-dashboard" not in (root / name).read_text() and time.time() < deadline:
                time.sleep(0.25)  # until the save has reached the disk
            assert "application/vnd.jupyter.widget-view+json" in (root / name).read_text()  # saved mid-run
            nb.page.reload()
            nb.wait_ready(cells, timeout=120)  # idle: the run has ended meanwhile or ends while we wait
            curves = nb.output(0).locator("img[alt$='loss curves']")
            try:
                curves.wait_for(timeout=60_000)
            finally:
                nb.shoot(nb.output(0), "after-reload")
            assert "completed at step 160" in nb.output_text(0)
            assert nb.new_console_errors() == []


def test_the_image_tutorial_draws_its_grid_heat_map_and_gallery_in_light_and_dark(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    copy_notebook(ROOT / "notebooks" / "image_classification.ipynb", root,
                  {"MODEL": "tiny", "N_TRAIN": 96, "N_EVAL": 48, "EPOCHS": 1})
    cells = len(nbformat.read(root / "image_classification.ipynb", 4).cells)
    with jupyter_server("lab", root, env={**ENV, "NBTUNE_RUNS_DIR": str(tmp_path / "runs")}) as (base, token):
        with open_notebook(base, token, "lab", "image_classification.ipynb", cells) as nb:
            nb.run_all()
            assert not [e for e in nb.errors_in_outputs() if "Error" in e or "Traceback" in e], nb.errors_in_outputs()
            for name in ("image-preview", "confusion", "top-losses"):
                picture = nb.page.locator(f".nbtune-{name}").first
                assert picture.is_visible(), name
                images = picture.locator("img")
                assert all(images.nth(i).evaluate("img => img.naturalWidth") > 0 for i in range(images.count()))
                nb.shoot(picture, f"images-{name}")
            assert nb.page.locator(".nbtune-image-preview img").count() >= 4  # one row per image shown
            light = nb.lowest_contrast()
            nb.menu("Settings", "Theme", "JupyterLab Dark")
            nb.page.wait_for_timeout(1500)
            nb.shoot(nb.page.locator(".nbtune-confusion").first, "images-confusion-dark")
            dark = nb.lowest_contrast()
            assert light[0] >= 4.5 and dark[0] >= 4.5, (light, dark)
            assert nb.new_console_errors() == []
