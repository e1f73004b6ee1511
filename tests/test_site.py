"""`make site`: the course as a website, built from the notebooks' stored outputs.

Each build runs `site/build.py` (what `make site` runs: Sphinx with warnings as errors, then the link
check) into a temporary folder, with the repository's git settings replaced by a temporary repository:
one with no remote, one whose origin is a GitHub fork.
"""

from __future__ import annotations

import base64
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sphinx", reason="the [site] extra is not installed")
bs4 = pytest.importorskip("bs4", reason="the [site] extra is not installed")

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
FORK = "someone/writing-servers-fork"
BUILD_TIMEOUT = 600


def _git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True, timeout=30)


def _build(folder: Path, origin: str | None) -> Path:
    """Run site/build.py into *folder*, the repository's remote being *origin* (or none); the pages' folder."""
    git_dir = folder / "repository.git"
    _git("init", "--quiet", "--bare", str(git_dir))
    if origin:
        _git("--git-dir", str(git_dir), "remote", "add", "origin", origin)
    env = {key: value for key, value in os.environ.items() if key != "WRITING_SERVERS_REPOSITORY"}
    env["GIT_DIR"] = str(git_dir)
    built = subprocess.run(
        [sys.executable, str(SITE / "build.py"), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert built.returncode == 0, f"site/build.py failed:\n{built.stdout}\n{built.stderr}"
    assert " 0 broken" in built.stdout, built.stdout
    return folder / "html"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of a clone with no GitHub remote."""
    return _build(tmp_path_factory.mktemp("site"), origin=None)


@pytest.fixture(scope="module")
def fork_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site of a clone whose origin is a GitHub fork."""
    return _build(tmp_path_factory.mktemp("fork-site"), origin=f"git@github.com:{FORK}.git")


def _page(site: Path, notebook: Path) -> Any:
    path = site / "notebooks" / f"{notebook.stem}.html"
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _cells(notebook: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return cells


def _stored_outputs(notebook: Path) -> list[tuple[str, str]]:
    """(kind, content) of each stored output, the kind being what the page shows: HTML, PNG, else text."""
    outputs = []
    for cell in _cells(notebook):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output["output_type"] == "stream":
                outputs.append(("stream", "".join(output["text"])))
            elif "image/png" in data:
                outputs.append(("image", data["image/png"]))
            elif "text/html" in data:
                outputs.append(("text_html", "".join(data["text/html"])))
            else:
                outputs.append(("text_plain", "".join(data["text/plain"])))
    return outputs


def _shown_outputs(page: Any) -> list[tuple[str, Any]]:
    shown = []
    for element in page.select("div.cell_output > *"):
        classes = element.get("class") or []
        if element.name == "img" or element.find("img"):
            shown.append(("image", element if element.name == "img" else element.find("img")))
        else:
            kind = next(kind for kind in ("stream", "text_html", "text_plain") if kind in classes)
            shown.append((kind, element))
    return shown


def _text(html: str) -> str:
    return " ".join(bs4.BeautifulSoup(html, "html.parser").get_text().split())


def test_every_notebook_is_a_page_in_reading_order(site: Path) -> None:
    """The sidebar lists every notebook in file order, and prev/next walk the same order."""
    names = [f"{notebook.stem}.html" for notebook in NOTEBOOKS]
    for notebook in NOTEBOOKS:
        page = _page(site, notebook)
        listed = [link["href"] for link in page.select("nav.bd-docs-nav a.reference")]
        here = f"{notebook.stem}.html"
        assert listed == ["#" if name == here else name for name in names]
        index = names.index(here)
        previous = page.select_one("footer.prev-next-footer a.left-prev")
        following = page.select_one("footer.prev-next-footer a.right-next")
        assert (previous["href"] if previous else None) == (names[index - 1] if index else None)
        assert (following["href"] if following else None) == (
            names[index + 1] if index + 1 < len(names) else None
        )


def test_the_home_page_is_the_index_notebook(site: Path) -> None:
    """The site's index.html sends the reader to notebook 00, whose title is the course's."""
    assert NOTEBOOKS[0].stem == "00-Index"
    assert 'url=notebooks/00-Index.html"' in (site / "index.html").read_text()
    first_heading = "".join(_cells(NOTEBOOKS[0])[0]["source"]).splitlines()[0].lstrip("# ")
    assert _page(site, NOTEBOOKS[0]).find("h1").get_text().rstrip("#") == first_heading


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_every_stored_output_is_shown(site: Path, notebook: Path) -> None:
    """Each page shows each stored output, in order: transcripts' HTML, text, streams and charts."""
    stored = _stored_outputs(notebook)
    shown = _shown_outputs(_page(site, notebook))
    assert [kind for kind, _ in shown] == [kind for kind, _ in stored]
    for (kind, content), (_, element) in zip(stored, shown, strict=True):
        if kind == "image":
            image = (site / "notebooks" / element["src"]).resolve()
            assert image.read_bytes() == base64.b64decode(content)
        elif kind == "text_html":
            assert " ".join(element.get_text().split()) == _text(content)
            assert len(element.find_all("table")) == content.count("<table")
        else:
            assert " ".join(element.get_text().split()) == " ".join(content.split())


def test_transcript_tables_and_the_chart_are_there(site: Path) -> None:
    """Notebook 1's transcripts are HTML tables, notebook 2 has its chart as an image that resolves."""
    protocols, closing = NOTEBOOKS[1], NOTEBOOKS[2]
    assert _page(site, protocols).select("div.cell_output div.text_html table")
    images = _page(site, closing).select("div.cell_output img")
    assert len(images) == 1
    assert (site / "notebooks" / images[0]["src"]).resolve().read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_hints_are_collapsible(site: Path, notebook: Path) -> None:
    """Every hint of the notebook is a closed <details> with its summary and its text inside."""
    hints = sum(
        "".join(cell["source"]).count("<details>")
        for cell in _cells(notebook)
        if cell["cell_type"] == "markdown"
    )
    details = _page(site, notebook).select("article details")
    assert len(details) == hints
    for hint in details:
        assert hint.summary.get_text() == "Hint"
        assert not hint.has_attr("open")
        assert len(hint.get_text()) > len("Hint") + 20


def test_links_between_notebooks_become_links_between_pages(site: Path) -> None:
    """A link to NN-Title.ipynb becomes NN-Title.html; a link to a program in src/ downloads that file."""
    page = _page(site, NOTEBOOKS[1])
    hrefs = [link["href"] for link in page.select("article a[href]")]
    assert "00-Index.html" in hrefs and f"{NOTEBOOKS[2].stem}.html" in hrefs
    assert not [href for href in hrefs if href.endswith(".ipynb")]
    download = page.select_one("article a.download[href$='counting_echo.py']")
    assert download is not None
    program = ROOT / "src" / "writing_servers" / "examples" / "counting_echo.py"
    assert (site / "notebooks" / download["href"]).resolve().read_bytes() == program.read_bytes()


def test_search_index_has_every_page(site: Path) -> None:
    """Sphinx's search page is there, and its index knows every page's title and the course's words."""
    assert (site / "search.html").is_file()
    index = (site / "searchindex.js").read_text(encoding="utf-8")
    for notebook in NOTEBOOKS:
        assert f'"notebooks/{notebook.stem}"' in index
    assert "abortconnect" in index  # a stemmed word from notebook 2's text


def test_each_page_has_one_search_field_in_the_sidebar(site: Path) -> None:
    """No second search bar across the top (pydata-sphinx-theme 0.20's default under the book theme)."""
    for notebook in NOTEBOOKS:
        page = _page(site, notebook)
        fields = page.select("button.search-button-field")
        assert len(fields) == 1, notebook.name
        assert fields[0].find_parent(id="pst-primary-sidebar") is not None


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_each_page_says_how_to_run_it_without_binder_when_no_repository(site: Path, notebook: Path) -> None:
    """With no GitHub remote or setting: make lab and conda for this notebook, and no Binder line at all."""
    box = _page(site, notebook).select_one("aside.run-it")
    text = " ".join(box.get_text().split())
    assert "make lab" in text
    assert f"jupyter lab notebooks/{notebook.name}" in text
    assert "conda env create -f environment.yml" in text
    assert "binder" not in str(box).lower()
    assert "mybinder.org/v2/" not in (site / "notebooks" / f"{notebook.stem}.html").read_text()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_each_page_links_binder_to_itself_when_origin_is_on_github(fork_site: Path, notebook: Path) -> None:
    """With a GitHub origin, each page's Binder link opens that notebook of that repository."""
    box = _page(fork_site, notebook).select_one("aside.run-it")
    binder = box.select_one("a.run-it-binder")
    assert (
        binder["href"] == f"https://mybinder.org/v2/gh/{FORK}/HEAD?urlpath=lab/tree/notebooks/{notebook.name}"
    )
    assert box.select_one(f"a[href='https://github.com/{FORK}']") is not None


@pytest.fixture
def github_repository(monkeypatch: pytest.MonkeyPatch) -> Any:
    """site/conf.py's github_repository, with WRITING_SERVERS_REPOSITORY unset."""
    monkeypatch.delenv("WRITING_SERVERS_REPOSITORY", raising=False)
    return runpy.run_path(str(SITE / "conf.py"))["github_repository"]


@pytest.mark.parametrize(
    ("origin", "repository"),
    [
        ("https://github.com/someone/fork.git", "someone/fork"),
        ("https://github.com/someone/fork", "someone/fork"),
        ("git@github.com:some-one/fork.name.git", "some-one/fork.name"),
        ("ssh://git@github.com/someone/fork.git", "someone/fork"),
        ("https://gitlab.com/someone/fork.git", None),
        ("/srv/git/writing-servers", None),
        (None, None),
    ],
)
def test_repository_comes_from_a_github_origin(
    github_repository: Any, tmp_path: Path, origin: str | None, repository: str | None
) -> None:
    """owner/name is read from the clone's origin when it is on GitHub; anything else gives none."""
    _git("init", "--quiet", str(tmp_path))
    if origin:
        _git("-C", str(tmp_path), "remote", "add", "origin", origin)
    assert github_repository(tmp_path) == repository


def test_the_setting_names_the_repository(
    github_repository: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WRITING_SERVERS_REPOSITORY=owner/name wins over the remote, and must look like owner/name."""
    _git("init", "--quiet", str(tmp_path))
    _git("-C", str(tmp_path), "remote", "add", "origin", "https://github.com/someone/fork.git")
    monkeypatch.setenv("WRITING_SERVERS_REPOSITORY", "teacher/course")
    assert github_repository(tmp_path) == "teacher/course"
    monkeypatch.setenv("WRITING_SERVERS_REPOSITORY", "https://github.com/teacher/course")
    with pytest.raises(ValueError, match="expected owner/name"):
        github_repository(tmp_path)


def test_link_check_finds_broken_links(tmp_path: Path) -> None:
    """site/check_links.py fails on a missing file or anchor and passes good and external links."""
    (tmp_path / "a.html").write_text(
        '<a href="b.html#here">ok</a> <a href="#top" id="top">ok</a> <a href="https://example.org/x">external</a>'
        '<img src="missing.png"> <a href="b.html#nowhere">bad</a> <a href="../outside.html">bad</a>'
    )
    (tmp_path / "b.html").write_text('<h1 id="here">B</h1>')
    checked = subprocess.run(
        [sys.executable, str(SITE / "check_links.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 1
    assert checked.stderr.splitlines() == [
        "a.html: missing.png (no such file)",
        "a.html: b.html#nowhere (no such anchor)",
        "a.html: ../outside.html (outside the site)",
    ]
    assert "2 pages, 6 links and resources: 3 broken" in checked.stdout
