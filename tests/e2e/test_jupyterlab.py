"""End to end: every notebook runs in JupyterLab, in a real browser, as a student runs it.

The test starts its own JupyterLab on 127.0.0.1 (free port, random token,
fresh HOME and Jupyter directories) serving a temporary copy of notebooks/,
so nothing the browser does (running, autosave) can touch the repository.
Chromium (the system one, driven by Playwright) opens each notebook, clears
its outputs, runs Run → "Restart Kernel and Run All Cells…" and waits until
every code cell has run and the kernel is idle.  A notebook fails on any
stderr or error output, or on a cell still running after the time limit.
A screenshot of each whole notebook is saved for a person to look at.
In JupyterLab Dark and Light, notebook 1's transcript colours are measured
against the background behind them (WCAG contrast, at least 4.5:1).

    .venv/bin/pytest tests/e2e -p no:cacheprovider

Environment: E2E_SCREENSHOTS (folder for the PNGs, default
tests/e2e/screenshots/), E2E_NOTEBOOK_TIMEOUT (seconds per notebook run,
default 180), E2E_CHROMIUM (the browser, default /usr/bin/chromium or
``chromium`` on PATH).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import ROOT, SCREENSHOTS, headless_chromium, needs_chromium

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


pytestmark = needs_chromium
NOTEBOOK_TIMEOUT = float(os.environ.get("E2E_NOTEBOOK_TIMEOUT", "180"))
SERVER_START_TIMEOUT = 90.0
SERVER_STOP_GRACE = 10.0
KERNEL_READY_TIMEOUT = 90.0
WIDTH, HEIGHT = 1280, 900
#: Chromium cannot paint a page much taller than this in one screenshot; taller notebooks come in parts.
MAX_SHOT_HEIGHT = 16000

#: User settings for the fresh JupyterLab: no news or update toasts over the notebook, no autosave,
#: every cell kept in the page (the default windowing leaves cells out of view unrendered, which a
#: screenshot of the whole notebook and a count of running cells both need), and no blank page
#: after the last cell (it would grow with the tall window the screenshot uses).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "scrollPastEnd": False},
}

#: One look at the notebook in the page: every code cell's prompt, its first source line,
#: its stderr/error outputs, and the kernel status as the toolbar and status bar show it.
STATE_JS = """
() => {
  const state = {cells: [], indicator: null, status: null};
  document.querySelectorAll('.jp-Notebook .jp-Cell').forEach((cell, index) => {
    if (!cell.classList.contains('jp-CodeCell')) return;
    const prompt = (cell.querySelector('.jp-InputPrompt')?.textContent || '').trim();
    const source = (cell.querySelector('.jp-InputArea-editor .cm-line')?.textContent || '').slice(0, 80);
    const errors = [...cell.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
    )].map(output => output.innerText.slice(0, 800));
    state.cells.push({index, prompt, source, errors});
  });
  state.indicator = document.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status ?? null;
  for (const item of document.querySelectorAll('.jp-StatusBar-TextItem')) {
    if (item.textContent.includes(' | ')) state.status = item.textContent.trim();
  }
  return state;
}
"""


@dataclass
class Lab:
    base: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={self.token}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            data=None if body is None else json.dumps(body).encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def shut_down_sessions(self) -> None:
        """Stop every kernel the browser started, so the next notebook has the machine to itself."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(home: Path) -> dict[str, str]:
    """This process's environment with every per-user Jupyter folder moved into *home*."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XDG_", "JUPYTER"))}
    env.update(
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    if "MPLCONFIGDIR" not in env:
        # A fresh HOME would make matplotlib rebuild its font cache in the kernel and say so on
        # stderr; point it at the cache `make install` already built.
        try:
            import matplotlib

            env["MPLCONFIGDIR"] = matplotlib.get_cachedir()
        except ImportError:
            pass
    for name, values in LAB_SETTINGS.items():
        settings = home / "lab-settings" / f"{name}.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(values))
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=SERVER_STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=SERVER_STOP_GRACE)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a temporary copy of notebooks/, stopped however the tests end."""
    base_dir = tmp_path_factory.mktemp("jupyterlab")
    root = base_dir / "root"
    shutil.copytree(
        ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    home = base_dir / "home"
    home.mkdir()
    port, token = _free_port(), secrets.token_hex(24)
    command = [
        sys.executable,  # the venv's python: its ipykernel is the "python3" kernel, with writing_servers
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root without it; CI runs as root
    log = base_dir / "jupyterlab.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=root, env=_environment(home), stdout=output, stderr=subprocess.STDOUT
        )
    server = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("GET", "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer within {SERVER_START_TIMEOUT:g} s:\n{server.log_tail()}"
                    )
                time.sleep(0.25)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def browser(lab: Lab) -> Iterator[Any]:
    """Headless chromium with a throwaway profile."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any, lab: Lab) -> Iterator[Any]:
    """A fresh browser context and page; the kernels it started are shut down afterwards."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    try:
        yield page
    finally:
        context.close()
        lab.shut_down_sessions()


def open_notebook(page: Any, lab: Lab, name: str) -> None:
    """Open notebooks/<name> in a workspace of its own, wait for an idle kernel, hide the file browser."""
    workspace = re.sub(r"[^A-Za-z0-9]+", "-", Path(name).stem).lower()
    page.goto(lab.url(f"/lab/workspaces/e2e-{workspace}/tree/notebooks/{name}"))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=KERNEL_READY_TIMEOUT * 1000)
    deadline = time.monotonic() + KERNEL_READY_TIMEOUT
    while not _kernel_idle(state(page)):
        if time.monotonic() > deadline:
            pytest.fail(
                f"{name}: the kernel was not idle within {KERNEL_READY_TIMEOUT:g} s: {state(page)['status']}"
            )
        time.sleep(0.25)
    left = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if left.count():
        left.first.click()  # collapses the file browser: the screenshot shows the notebook at full width


def menu(page: Any, top: str, item: str) -> None:
    """Click menu *top* → *item*, as a person would."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(top)}$")).click()
    label = page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$"))
    label.click()


def state(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(STATE_JS)
    return result


def _kernel_idle(seen: dict[str, Any]) -> bool:
    return seen["indicator"] == "idle" and bool(re.search(r"\|\s*Idle$", seen["status"] or ""))


def clear_outputs(page: Any) -> None:
    """Edit → Clear Outputs of All Cells: every prompt becomes "[ ]", so a finished run is unmistakable."""
    menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]"
        ".every(p => !/\\d/.test(p.textContent))"
    )


def wait_until_run(page: Any, name: str, timeout: float) -> dict[str, Any]:
    """Wait until every code cell has an execution count (or an error stopped the run) and the kernel is idle."""
    deadline = time.monotonic() + timeout
    settled = 0
    while True:
        seen = state(page)
        cells = seen["cells"]
        running = [cell for cell in cells if "*" in cell["prompt"]]
        unrun = [cell for cell in cells if not re.fullmatch(r"\[\d+\]:", cell["prompt"])]
        errors = any(cell["errors"] for cell in cells)
        finished = not running and _kernel_idle(seen) and (not unrun or errors)
        settled = settled + 1 if finished else 0
        if settled >= 2:  # the same answer twice in a row, a quarter second apart
            return seen
        if time.monotonic() > deadline:
            described = "\n".join(
                f"  cell {c['index']} {c['prompt']} {c['source']!r}" for c in running or unrun
            )
            pytest.fail(
                f"{name}: not finished after {timeout:g} s (kernel: {seen['status']}); "
                f"{len(running)} cell(s) still running, {len(unrun)} not run:\n{described}"
            )
        time.sleep(0.25)


def error_report(name: str, seen: dict[str, Any]) -> str:
    lines = []
    for cell in seen["cells"]:
        for text in cell["errors"]:
            lines.append(f"--- {name} cell {cell['index']} {cell['prompt']} {cell['source']!r}:\n{text}")
    return "\n".join(lines)


def screenshot(page: Any, stem: str) -> list[Path]:
    """Save the whole notebook as PNGs: the window grows as tall as the notebook (in parts if very long)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob(f"{stem}*.png"):
        if re.fullmatch(rf"{re.escape(stem)}(-part\d+)?", old.stem):
            old.unlink()
    page.mouse.click(2, HEIGHT - 2)  # away from cells: no hover toolbars in the picture
    scroller = ".jp-NotebookPanel .jp-WindowedPanel-outer"

    def measure() -> tuple[int, int]:
        total, visible = page.eval_on_selector(scroller, "el => [el.scrollHeight, el.clientHeight]")
        return int(total), int(visible)

    def resize(height: int) -> None:
        page.set_viewport_size({"width": WIDTH, "height": height})
        page.wait_for_timeout(300)  # let the page lay out and paint at its new size

    height = HEIGHT
    for _ in range(5):  # the notebook's height can change as the window does: grow until it fits
        total, visible = measure()
        wanted = min(height + total - visible, MAX_SHOT_HEIGHT)
        if wanted <= height:
            break
        height = wanted
        resize(height)
    total, visible = measure()
    parts = -(-total // visible)
    shots = []
    for part in range(parts):
        top = part * visible
        if part and total - top < visible:  # the last part: only as tall as what is left
            resize(height - (visible - (total - top)))
        page.eval_on_selector(scroller, f"el => {{ el.scrollTop = {top}; }}")
        page.wait_for_timeout(200)
        path = SCREENSHOTS / (f"{stem}.png" if parts == 1 else f"{stem}-part{part + 1}.png")
        page.screenshot(path=str(path))
        shots.append(path)
    resize(HEIGHT)
    return shots


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(notebook: Path, lab: Lab, page: Any, record_property: Any) -> None:
    """Run → Restart Kernel and Run All Cells finishes in time with no stderr or error output."""
    began = time.monotonic()
    open_notebook(page, lab, notebook.name)
    clear_outputs(page)
    menu(page, "Run", "Restart Kernel and Run All Cells…")
    page.locator(".jp-Dialog .jp-mod-accept").click()  # "Restart Kernel?" → Restart
    try:
        seen = wait_until_run(page, notebook.name, NOTEBOOK_TIMEOUT)
    finally:  # timed out or not, record how long it took and what the page showed
        seconds = time.monotonic() - began
        record_property("e2e_seconds", round(seconds, 1))
        shots = screenshot(page, notebook.stem)
        print(f"{notebook.name}: {seconds:.1f} s, screenshot {', '.join(map(str, shots))}")
    errors = error_report(notebook.name, seen)
    assert not errors, f"error output in JupyterLab:\n{errors}\nbrowser console errors: {page.console_errors}"
    assert all(re.fullmatch(r"\[\d+\]:", cell["prompt"]) for cell in seen["cells"])


def test_protocols_runs_twice_in_one_kernel(lab: Lab, page: Any, record_property: Any) -> None:
    """01-Protocols: Run All Cells, then Run All Cells again in the same kernel, with no error output."""
    notebook = ROOT / "notebooks" / "01-Protocols.ipynb"
    began = time.monotonic()
    open_notebook(page, lab, notebook.name)
    code_cells = len(state(page)["cells"])
    for run in (1, 2):
        clear_outputs(page)
        menu(page, "Run", "Run All Cells")
        seen = wait_until_run(page, f"{notebook.name} (run {run})", NOTEBOOK_TIMEOUT)
        errors = error_report(f"{notebook.name} (run {run})", seen)
        assert not errors, (
            f"error output in JupyterLab:\n{errors}\nbrowser console errors: {page.console_errors}"
        )
    counts = [int(cell["prompt"].strip("[]:")) for cell in seen["cells"]]
    assert min(counts) > code_cells, f"the second run did not reuse the first run's kernel: counts {counts}"
    seconds = time.monotonic() - began
    record_property("e2e_seconds", round(seconds, 1))
    shots = screenshot(page, f"{notebook.stem}-run-twice")
    print(f"{notebook.name} twice: {seconds:.1f} s, screenshot {', '.join(map(str, shots))}")


#: Where each transcript colour comes from (render.py), named by the line kinds that use it.
COLOUR_KINDS = {
    "--jp-content-link-color": "typed",
    "--jp-content-font-color2": "note",
    "--jp-mirror-editor-keyword-color": "event/✓",
    "--jp-error-color1": "error/✗",
}
#: WCAG 2 AA's minimum contrast for text of normal size.
AA_CONTRAST = 4.5

#: Every span in the notebook's <pre> outputs: the theme variable its style names (if any), its
#: computed colour, and the backgrounds behind it, nearest first, up to the first opaque one.
SPANS_JS = """
(variables) => [...document.querySelectorAll('.jp-OutputArea-output pre span')].map(span => {
  const backgrounds = [];
  for (let el = span; el; el = el.parentElement) {
    const background = getComputedStyle(el).backgroundColor;
    if (background === 'transparent' || /^rgba\\(.*,\\s*0\\)$/.test(background)) continue;
    backgrounds.push({background, element: [el.tagName.toLowerCase(), ...el.classList].join('.')});
    if (background.startsWith('rgb(')) break;
  }
  const style = span.getAttribute('style') || '';
  const variable = variables.find(v => style.includes(`var(${v},`)) ?? null;
  return {variable, style, color: getComputedStyle(span).color, backgrounds};
})
"""

RGB = tuple[float, float, float]


def _rgba(css: str) -> tuple[float, float, float, float]:
    """Parse the computed-style form "rgb(r, g, b)" or "rgba(r, g, b, a)"."""
    numbers = [float(part) for part in re.findall(r"[\d.]+", css)]
    assert css.startswith("rgb") and len(numbers) in (3, 4), f"unexpected computed colour {css!r}"
    return (numbers[0], numbers[1], numbers[2], numbers[3] if len(numbers) == 4 else 1.0)


def _over(top: tuple[float, float, float, float], below: RGB) -> RGB:
    """*top* painted over the opaque colour *below* (alpha compositing)."""
    alpha = top[3]
    red, green, blue = (top[index] * alpha + below[index] * (1 - alpha) for index in range(3))
    return (red, green, blue)


def _luminance(rgb: RGB) -> float:
    """WCAG 2 relative luminance of an sRGB colour with 0-255 channels."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(channel) for channel in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: RGB, background: RGB) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@dataclass
class Measured:
    """The lowest contrast among the spans drawn in one colour source."""

    ratio: float
    colour: str
    background: RGB
    behind: str
    count: int

    def __str__(self) -> str:
        shown = "rgb({:.0f}, {:.0f}, {:.0f})".format(*self.background)
        return (
            f"{self.colour:26} on {shown:20} {self.ratio:5.2f}:1 "
            f"(lowest of {self.count}; background of {self.behind})"
        )


def span_contrasts(page: Any) -> dict[str | None, Measured]:
    """The lowest contrast per theme variable (None: spans whose style names none of them)."""
    lowest: dict[str | None, Measured] = {}
    for span in page.evaluate(SPANS_JS, list(COLOUR_KINDS)):
        background: RGB = (255.0, 255.0, 255.0)  # the canvas, if nothing is opaque
        for layer in reversed(span["backgrounds"]):  # translucent layers over the first opaque one
            background = _over(_rgba(layer["background"]), background)
        ratio = contrast(_over(_rgba(span["color"]), background), background)
        seen = lowest.get(span["variable"])
        count = seen.count + 1 if seen else 1
        behind = span["backgrounds"][0]["element"] if span["backgrounds"] else "the canvas"
        if seen is None or ratio < seen.ratio:
            lowest[span["variable"]] = Measured(ratio, span["color"], background, behind, count)
        else:
            seen.count = count
    return lowest


def report(title: str, lowest: dict[str | None, Measured]) -> dict[str, float]:
    """Print the figures for the lead's note; return the kinds below AA."""
    print(f"\n{title}")
    names = {None: "no theme variable", **COLOUR_KINDS}
    for variable, measured in sorted(lowest.items(), key=lambda item: str(item[0])):
        print(f"  {names[variable]:17} {measured}")
    return {names[v]: round(m.ratio, 2) for v, m in lowest.items() if m.ratio < AA_CONTRAST}


def test_contrast_ratio_matches_wcag_examples() -> None:
    """The contrast helper gives WCAG's known figures: black on white 21:1, #767676 on white 4.54:1."""
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((0x76, 0x76, 0x76), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)
    assert _over((255, 255, 255, 0.7), (17, 17, 17)) == pytest.approx((183.6, 183.6, 183.6))


@pytest.fixture
def theme(lab: Lab) -> Iterator[Any]:
    """Set JupyterLab's theme through its settings API (what Settings → Theme saves); back to Light after."""
    path = "/lab/api/settings/@jupyterlab/apputils-extension:themes"

    def choose(name: str) -> None:
        lab.api("PUT", path, {"raw": json.dumps({"theme": name})})

    yield choose
    choose("JupyterLab Light")


@pytest.mark.parametrize("theme_name", ["JupyterLab Dark", "JupyterLab Light"])
def test_transcript_colours_contrast_in_theme(
    theme_name: str, lab: Lab, page: Any, theme: Any, record_property: Any
) -> None:
    """01-Protocols in JupyterLab Dark and Light: every transcript colour is at least 4.5:1 on its background.

    Measured twice: the stored outputs as a fresh clone first shows them (an untrusted notebook, whose
    HTML JupyterLab sanitizes), then the outputs of a run, where each of the four colours must appear.
    """
    notebook = ROOT / "notebooks" / "01-Protocols.ipynb"
    theme(theme_name)
    began = time.monotonic()
    open_notebook(page, lab, notebook.name)
    page.wait_for_selector(f'body[data-jp-theme-name="{theme_name}"]', state="attached")
    stored = span_contrasts(page)
    clear_outputs(page)
    menu(page, "Run", "Restart Kernel and Run All Cells…")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    seen = wait_until_run(page, notebook.name, NOTEBOOK_TIMEOUT)
    record_property("e2e_seconds", round(time.monotonic() - began, 1))
    shots = screenshot(page, ("dark-" if "Dark" in theme_name else "light-") + notebook.stem[:2])
    run = span_contrasts(page)
    errors = error_report(notebook.name, seen)
    assert not errors, f"error output in JupyterLab:\n{errors}"
    low_stored = report(f"{theme_name}, {notebook.name} as stored (untrusted):", stored)
    low_run = report(f"{theme_name}, {notebook.name} after Run All; {', '.join(map(str, shots))}:", run)
    assert stored, "no transcript spans in the stored outputs"
    assert set(COLOUR_KINDS) <= set(run), f"colours not shown: {set(COLOUR_KINDS) - set(run)}"
    assert not low_stored and not low_run, f"below {AA_CONTRAST}:1: stored {low_stored}, run {low_run}"
