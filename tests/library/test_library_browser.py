"""The Library page in Debian's Chromium on a real server given a library: the WebGL map draws,
a lasso lists the songs inside it, and the mood path downloads as M3U."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.library.library_files import made_up_library
from tests.live_server import LiveServer, ServerFailed

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return made_up_library(tmp_path_factory.mktemp("library"), n=300)


@pytest.fixture(scope="module")
def server(tmp_path_factory, library):
    dataset, _, _ = library
    try:
        with LiveServer(tmp_path_factory.mktemp("streamlit") / "server.log", 90,
                        env={"MOODLENS_LIBRARY": str(dataset)}) as srv:
            yield srv
    except ServerFailed as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def page(server):
    if not CHROMIUM.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{CHROMIUM} is missing: CI runs the browser tests")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        # SwiftShader: WebGL without a GPU, for the map's Scattergl points.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda e: errors.append(str(e)))
        tab.goto(f"{server.url}/library")
        _idle(tab)
        tab.errors = errors
        yield tab
        browser.close()


def _idle(tab) -> None:
    tab.locator('h1:has-text("Library")').first.wait_for(state="visible")
    tab.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'")


def test_the_map_draws_every_song_with_webgl(page):
    chart = page.locator(".js-plotly-plot").first
    chart.wait_for(state="visible")
    assert page.locator("text=300 songs shown").count() == 1
    assert page.locator(".js-plotly-plot canvas").count() >= 1  # Scattergl's WebGL canvas
    assert not page.errors, page.errors


def test_a_lasso_lists_the_songs_inside_it(page):
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    box = plot.bounding_box()
    # A lasso round the middle of the map (valence and arousal about 0.3 to 0.7).
    corners = [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.31)]
    points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in corners]
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.locator("text=songs selected").first.wait_for(state="visible")
    _idle(page)
    heading = page.locator("h3:has-text('songs selected')").first.inner_text()
    assert int(heading.split()[0].replace(",", "")) > 5


def test_the_mood_path_downloads_as_m3u(page):
    page.get_by_role("tab", name="Mood path").click()
    # The selection's list has its own (hidden in the other tab): the one in view.
    button = page.locator('[data-testid="stDownloadButton"] button:visible', has_text="Playlist (M3U)").first
    button.wait_for(state="visible")
    with page.expect_download() as download:
        button.click()
    text = Path(download.value.path()).read_text()
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and sum(line.startswith("#EXTINF:") for line in lines) == 12
