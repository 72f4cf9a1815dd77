"""The rendered book in a real browser: headless Chromium, driven by Playwright, over every page.

The book (built at the smoke profile by the ``built_book`` fixture) is served on
localhost. Chromium comes from Debian (``make test`` installs it where it can);
without it these tests skip and say how to install it.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from course_utils.build import toc_files

CHROMIUM = shutil.which("chromium") or shutil.which("google-chrome") or "/usr/bin/chromium"
# Chromium's own background traffic is refused on a closed network; these keep it quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SEARCH_WORDS = {
    "week1_cnn_basics": "LeNet",
    "week2_recognition": "MobileNetV2",
    "week3_detection": "RetinaNet",
    "week4_segmentation": "U-Net",
    "week5_metric_learning": "triplet",
}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Chromium is not installed: `sudo apt-get install chromium` (make test does it as root)",
)


@pytest.fixture(scope="module")
def site(built_book):
    """The built HTML served on a free localhost port; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built_book / "html"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def pages(root):
    return toc_files(root)


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url} answered {response and response.status}"
    return page, errors


@pytest.mark.parametrize("doc", pages(Path(__file__).resolve().parents[1]))
def test_page_loads_with_images_math_and_no_error_output(root, site, browser, built_book, doc):
    page, errors = open_page(browser, f"{site}/{doc}.html")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=20_000)
    broken = page.evaluate("Array.from(document.images).filter(i => i.naturalWidth === 0).map(i => i.src)")
    assert not broken, f"images that did not load on {doc}: {broken}"
    html = page.content()
    if "\\(" in html or "\\[" in html or 'class="math' in html:
        page.wait_for_selector("mjx-container", timeout=20_000)
        assert page.locator("mjx-container").count() > 0
    assert page.locator(".output.traceback, .output.error, .cell_output .stderr").count() == 0
    assert "Traceback (most recent call last)" not in page.inner_text("main")
    assert not errors, f"JavaScript errors on {doc}: {errors}"
    if doc.startswith(("book/week", "exercises/")):
        assert page.locator("button.copybtn").count() > 0, "code cells should have copy buttons"
        shots = built_book / "screenshots"
        shots.mkdir(exist_ok=True)
        page.screenshot(path=str(shots / f"{doc.replace('/', '_')}.png"), full_page=True)
    page.close()


@pytest.mark.parametrize(
    "doc", [d for d in pages(Path(__file__).resolve().parents[1]) if d.startswith(("book/week", "exercises/"))]
)
def test_colab_and_download_links_point_to_files_in_the_repository(root, site, browser, doc):
    page, _ = open_page(browser, f"{site}/{doc}.html")
    links = page.eval_on_selector_all("a[href*='colab.research.google.com/github/']", "els => els.map(e => e.href)")
    assert links, f"no Open in Colab link on {doc}"
    for link in links:
        path = re.sub(r"^/github/[^/]+/[^/]+/blob/[^/]+/", "", urlparse(link).path)
        assert (root / path).is_file(), f"{doc} links to Colab notebook {path}, which is not in the repository"
    assert any(link.endswith(f"/{doc}.ipynb") for link in links), f"{doc} has no Colab link to its own notebook"
    page.close()


def test_table_of_contents_is_in_week_order(root, site, browser):
    page, _ = open_page(browser, f"{site}/book/intro.html")
    hrefs = page.eval_on_selector_all(
        "nav.bd-docs-nav a.reference.internal", "els => els.map(e => e.getAttribute('href'))"
    )
    weeks = [
        re.search(r"week(\d)", h).group(1)
        for h in hrefs
        if re.search(r"book/week\d|week\d_cnn|week\d_", h) and "exercise" not in h
    ]
    assert weeks == sorted(weeks) and weeks, hrefs
    page.close()


@pytest.mark.parametrize("doc", pages(Path(__file__).resolve().parents[1]))
def test_a_page_fits_a_phone_without_scrolling_sideways(site, browser, doc):
    """At 400 px nothing widens the page itself: code blocks and figures scroll inside their box, and inline
    code names (a record, a file path) wrap (course_utils.sphinx_ext.PAGE_STYLE)."""
    page = browser.new_page(viewport={"width": 400, "height": 900})
    page.goto(f"{site}/{doc}.html", wait_until="load")
    width = page.evaluate("document.documentElement.scrollWidth")
    # Figures narrowed to the phone keep their proportions (the 2x figures carry a width and a height).
    squeezed = page.eval_on_selector_all(
        ".bd-article img",
        "els => els.filter(e => e.naturalWidth && e.clientWidth && Math.abs("
        "e.clientHeight / e.clientWidth - e.naturalHeight / e.naturalWidth) > 0.02).map(e => e.src)",
    )
    # A figure keeps its display width and scrolls inside its cell: shrunk, its 9-pt labels would read as 5 pt.
    shrunk = page.eval_on_selector_all(
        ".bd-article div.cell_output img",
        "els => els.filter(e => e.style.width && e.clientWidth < parseFloat(e.style.width) - 1).map(e => e.src)",
    )
    page.close()
    assert width <= 400, f"{doc} is {width} px wide at a 400-px viewport"
    assert not squeezed, f"{doc}: figures squeezed out of proportion at 400 px: {squeezed}"
    assert not shrunk, f"{doc}: figures shrunk below their display width at 400 px: {shrunk}"


# Per code block: does it scroll sideways, how many characters fit on one of its lines, and its text.
MEASURE_CODE_BLOCKS = """els => els.map(e => {
    const probe = document.createElement('span');
    probe.textContent = 'x'.repeat(100);
    probe.style.whiteSpace = 'pre';  // one line, even inside an output that wraps
    probe.style.position = 'absolute';
    e.appendChild(probe);
    const style = getComputedStyle(e);
    const inner = e.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const columns = Math.floor(inner / (probe.getBoundingClientRect().width / 100));
    probe.remove();
    return {scrolls: e.scrollWidth > e.clientWidth + 1, columns: columns, text: e.textContent,
            output: e.closest('.cell_output') !== null};
})"""


def aligned_lines_too_long(block):
    """The lines of a printed table (columns aligned by runs of spaces) longer than the block holds: wrapped,
    they would break the table's columns."""
    return [
        line for line in block["text"].splitlines() if len(line) > block["columns"] and re.search(r"\S {2,}\S", line)
    ]


@pytest.mark.parametrize("doc", [d for d in pages(Path(__file__).resolve().parents[1]) if "week" in d])
def test_no_code_cell_or_output_scrolls_sideways_at_1280_px(site, browser, doc):
    """The sources are formatted to 80 columns (tests/test_style.py) and set at 13 px; printed sentences wrap
    as in Jupyter, and printed tables are narrow enough not to (course_utils.sphinx_ext.PAGE_STYLE)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site}/{doc}.html", wait_until="load")
    blocks = page.eval_on_selector_all(".bd-article div.cell pre", MEASURE_CODE_BLOCKS)
    page.close()
    assert blocks, f"{doc}: no code cells found"
    assert min(b["columns"] for b in blocks) >= 80, f"{doc}: a code block holds fewer than 80 columns"
    scrolling = [max(b["text"].splitlines() or [""], key=len) for b in blocks if b["scrolls"]]
    assert not scrolling, f"{doc}: code cells or outputs scroll sideways at 1280 px; their longest lines: {scrolling}"
    broken_tables = [line for b in blocks if b["output"] for line in aligned_lines_too_long(b)]
    assert not broken_tables, f"{doc}: printed tables wider than the page wrap: {broken_tables}"


def test_the_table_check_spares_sentences_and_catches_tables():
    block = {"columns": 20, "text": "a sentence that is longer than twenty\nname      value   other\nshort  ok"}
    assert aligned_lines_too_long(block) == ["name      value   other"]


def test_a_page_shows_one_search_field(site, browser):
    """The theme's header has a search field; the sidebar does not repeat it (_config.yml, html_sidebars)."""
    page, _ = open_page(browser, f"{site}/book/intro.html")
    assert page.locator(".search-button-field:visible").count() == 1
    page.close()


@pytest.mark.parametrize(
    "chapter", [d for d in pages(Path(__file__).resolve().parents[1]) if d.startswith("book/week")]
)
def test_search_finds_each_chapter_by_a_word_of_its_own(site, browser, chapter):
    word = SEARCH_WORDS[Path(chapter).name]
    page, _ = open_page(browser, f"{site}/search.html?q={word}")
    page.wait_for_selector("#search-results ul.search li", timeout=20_000)
    hits = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
    assert any(Path(chapter).name in hit for hit in hits), f"searching {word!r} did not find {chapter}: {hits}"
    page.close()
