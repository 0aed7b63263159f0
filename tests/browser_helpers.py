"""A real browser on a real Jupyter server: JupyterLab 4 or Notebook 7 on 127.0.0.1, Debian's chromium driven by
Playwright (``executable_path``, no browser download), cells run through the menus, widgets clicked with the mouse.

Screenshots go to ``test-artifacts/browser/`` (ignored by git). Without chromium or Playwright the tests skip
with one line saying what is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("NBTUNE_CHROMIUM", "/usr/bin/chromium")
# what a headless chromium needs on a machine with no network and no sandboxing (root, containers)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]
# JupyterLab's own requests that cannot succeed offline; nothing of nbtune's may show up in the console
IGNORED_CONSOLE = ("Failed to load resource", "net::ERR_", "favicon", "api/lsp", "lab/api/news",
                   "lab/api/listings", "jupyterlab-plugin-playground")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no chromium at {CHROMIUM} (apt-get install chromium; scripts/test.sh does it where it can)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (it comes with nbtune[dev])"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(app: str, root_dir: Path, env: dict[str, str] | None = None):
    """Start ``jupyter lab`` or ``jupyter notebook`` (Notebook 7) serving ``root_dir``; yields its base URL and
    token. Its data and config folders are temporary, so nothing of the user's setup leaks in or out."""
    port, token = _free_port(), secrets.token_hex(16)
    home = root_dir.parent / f".jupyter-{app}"
    for sub in ("data", "config", "runtime"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    if app == "lab":  # no "subscribe to Jupyter news?" toast over the cells, no update check against the network
        (home / "config" / "labconfig").mkdir(exist_ok=True)
        (home / "config" / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    full_env = {**os.environ, **(env or {}), "JUPYTER_DATA_DIR": str(home / "data"),
                "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
         "--ServerApp.disable_check_xsrf=True"],
        env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"jupyter {app} did not start:\n" + (home / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


CONTRAST_JS = """() => {
  const rgba = s => { const v = (s.match(/[\\d.]+/g) || []).map(Number); return v.length === 3 ? [...v, 1] : v; };
  const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  // the colour the text sits on: translucent backgrounds (a heat map's cells) composited over those beneath them
  const background = el => { const layers = [];
    for (; el; el = el.parentElement) { const c = rgba(getComputedStyle(el).backgroundColor);
      if (c.length === 4 && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
    let seen = [255, 255, 255];
    for (let i = layers.length - 1; i >= 0; i--) { const a = layers[i][3];
      seen = seen.map((v, k) => a * layers[i][k] + (1 - a) * v); }
    return [...seen, 1]; };
  let worst = [99, ''];
  for (const el of document.querySelectorAll('.jp-OutputArea [style*="color"]')) {
    if (!el.textContent.trim() || !/(^|;)\\s*color\\s*:/.test(el.getAttribute('style'))) continue;
    const bg = background(el), fg = rgba(getComputedStyle(el).color);
    const seen = fg.slice(0, 3).map((c, i) => fg[3] * c + (1 - fg[3]) * bg[i]);  // a translucent colour over its background
    const a = lum(seen), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < worst[0]) worst = [ratio, el.textContent.trim().slice(0, 60)];
  }
  return worst;
}"""


class NotebookPage:
    """One open notebook in JupyterLab or Notebook 7: run cells through the menus, read outputs, click widgets,
    take screenshots; console errors are collected in ``console_errors``."""

    def __init__(self, page, name: str, app: str):
        self.page, self.name, self.app = page, name, app
        self.console_errors: list[str] = []
        # errors the frontend logs while opening an empty notebook are its own (Notebook 7.6 logs one, "reading
        # 'schema'", with no nbtune code on the page); ``new_console_errors`` are those after that point
        self.frontend_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"page error: {exc}"))

    def _on_console(self, message) -> None:
        if message.type == "error" and not any(p in message.text for p in IGNORED_CONSOLE):
            self.console_errors.append(message.text)

    def wait_ready(self, cells: int, timeout: float = 120) -> None:
        """Until all ``cells`` are drawn and the kernel has started and is idle."""
        self.page.wait_for_function(f"() => document.querySelectorAll('.jp-Notebook .jp-Cell').length >= {cells}",
                                    timeout=timeout * 1000)
        self.wait_idle(timeout)
        time.sleep(1)
        self.frontend_errors = list(self.console_errors)

    def new_console_errors(self) -> list[str]:
        """Console errors since the notebook was ready: what nbtune's outputs and widgets caused."""
        return self.console_errors[len(self.frontend_errors):]

    def kernel_status(self) -> str:
        """The kernel's status as the page shows it (the notebook's execution indicator): idle, busy..."""
        return self.page.evaluate(
            "() => { const e = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator')"
            " || document.querySelector('.jp-Notebook-ExecutionIndicator');"
            " return e ? (e.getAttribute('data-status') || '') : ''; }")

    def wait_idle(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.kernel_status() == "idle" and not self.running_prompts():
                return
            time.sleep(0.25)
        raise AssertionError(f"the kernel stayed busy for {timeout} s ({self.kernel_status()!r})")

    def running_prompts(self) -> int:
        return self.page.evaluate(
            "() => [...document.querySelectorAll('.jp-InputPrompt')].filter(p => p.textContent.includes('*')).length")

    def menu(self, *path: str) -> None:
        """Click through the menu bar, e.g. ``menu("Run", "Run All Cells")``."""
        self.page.click(f".lm-MenuBar-itemLabel:text-is('{path[0]}')")
        for item in path[1:]:
            self.page.click(f".lm-Menu-itemLabel:text-is('{item}')")

    def run_all(self, timeout: float = 600) -> float:
        started = time.monotonic()
        self.menu("Run", "Run All Cells")
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))",
            timeout=30_000)
        self.wait_idle(timeout)
        return time.monotonic() - started

    def run_cell(self, index: int, timeout: float = 300, wait: bool = True) -> None:
        """Select code cell ``index`` (0-based among all cells) and run it with Shift+Enter."""
        cell = self.page.locator(".jp-Notebook .jp-Cell").nth(index)
        cell.locator(".jp-InputArea-prompt").click()
        self.page.keyboard.press("Shift+Enter")
        if wait:
            self.page.wait_for_function(
                f"() => {{ const p = document.querySelectorAll('.jp-Notebook .jp-Cell')[{index}]"
                f".querySelector('.jp-InputPrompt'); return p && /\\[\\d+\\]/.test(p.textContent); }}",
                timeout=timeout * 1000)

    def output_text(self, index: int) -> str:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea").inner_text()

    def errors_in_outputs(self) -> list[str]:
        return self.page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()

    def output(self, index: int):
        """The output area of cell ``index`` (a Playwright locator)."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea")

    def freezer_row(self, index: int, label: str):
        """The freezing widget's row (an HBox: open button, checkbox, label) whose label starts with ``label``."""
        import re

        label_html = self.page.locator(".widget-html", has_text=re.compile(rf"^\s*{re.escape(label)}\b"))
        return self.output(index).locator(".widget-hbox").filter(has=label_html).first

    def lowest_contrast(self) -> tuple[float, str]:
        """The lowest WCAG contrast ratio between nbtune's coloured text (inline ``color:``) in the outputs and the
        background it sits on, with that text: the colours must stay readable in the light and the dark theme."""
        return tuple(self.page.evaluate(CONTRAST_JS))

    def shoot(self, locator, label: str) -> Path:
        """A screenshot of one element (an output, a widget), scrolled into view."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.app}-{self.name}-{label}.png"
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(path))
        return path

    def save(self) -> None:
        self.page.keyboard.press("Control+s")
        time.sleep(1.5)

    def screenshot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.app}-{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@contextlib.contextmanager
def open_notebook(base: str, token: str, app: str, name: str, cells: int, width: int = 1280, height: int = 900):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            url = f"{base}/lab/tree/{name}?token={token}" if app == "lab" else f"{base}/notebooks/{name}?token={token}"
            page.goto(url)
            notebook = NotebookPage(page, Path(name).stem, app)
            notebook.wait_ready(cells)
            yield notebook
        finally:
            browser.close()


def shoot_page(locator, label: str) -> Path:
    """A screenshot of one element of any page (an exported notebook) into the artifacts folder."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{label}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    return path


def copy_notebook(source: Path, folder: Path, parameters: dict | None = None) -> Path:
    """A copy of ``source`` in ``folder`` with ``parameters`` injected after its parameters cell."""
    import nbformat

    from nbtune.notebooks import inject_parameters

    nb = nbformat.read(source, as_version=4)
    inject_parameters(nb, parameters or {})
    for cell in nb.cells:  # start from a clean notebook, as a user opening it fresh would
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    target = folder / source.name
    nbformat.write(nb, target)
    return target


def require_browser() -> None:
    missing = browser_missing()
    if missing:
        pytest.skip(f"browser tests skipped: {missing}")


def clean(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
