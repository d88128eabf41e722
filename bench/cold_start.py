"""From a fresh server to a usable page, in a real browser.

    python -m bench.cold_start [--pages song_mood,compare_variants] [--runs 1] [--json PATH]

For each page and run: start `streamlit run streamlit_app.py` on a free localhost port (a fresh
process: nothing loaded), open the page in Debian's Chromium at once, and time
- "server up": `/_stcore/health` answers;
- "title": the page's title is drawn (from the start of the server);
- "usable": what a person uses first is drawn: the Song page's uploader, the Face page's tabs (webcam,
  photo, live video), the Compare page's uploader (under its forest plots); a file picked then
  waits for what is left of the loading, with a spinner;
- "ready": the page's script run has finished (the models it needs have loaded);
- "first result": a generated 8-s song (Song page) or grey photo (Face page) uploaded then, until its
  result is on the page.
- "RSS at ready": the resident memory of the server and every process it started (its workers),
  summed, read from /proc when the page is ready.
Goals: usable within 10 s (issue "Live"); the Song page ready within 6 s, with server and workers
within 600 MB then (issue "Serve with LiteRT"). Times are from the start of `streamlit run`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import Report, add_report_option, load_note
from tests.conftest import music_like, wav_bytes
from tests.live_server import LiveServer

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 180_000
GOAL_USABLE_S = 10.0
GOAL_READY_S = 6.0        # the Song page
GOAL_RSS_MB = 600.0       # server + workers, at ready
USABLE = {
    "song_mood": '[data-testid="stFileUploader"]',
    "face_expression": '[data-testid="stTabs"]',
    "compare_variants": '[data-testid="stFileUploader"]',
}
# The song on the map; for the grey photo (no face in it), the page's answer: its picture or its warning.
RESULT = {"song_mood": '[data-testid="stPlotlyChart"]',
          "face_expression": '[data-testid="stImage"], [data-testid="stAlertContentWarning"]'}


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MB (from /proc)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    total_kb = 0
    for member in tree:
        try:
            status = Path(f"/proc/{member}/status").read_text()
            total_kb += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total_kb / 1024


def _idle(page) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'",
        timeout=TIMEOUT_MS)


def one_run(browser, page_name: str, folder: Path) -> dict:
    started = time.monotonic()
    with LiveServer(folder / f"{page_name}.log") as server:
        up = time.monotonic() - started
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/{page_name}")
        page.locator("h1").first.wait_for(state="visible", timeout=TIMEOUT_MS)
        title = time.monotonic() - started
        page.locator(USABLE[page_name]).first.wait_for(state="visible", timeout=TIMEOUT_MS)
        usable = time.monotonic() - started
        _idle(page)
        ready = time.monotonic() - started
        rss_mb = tree_rss_mb(server.pid)
        result = None
        if page_name in RESULT:
            path = folder / ("song.wav" if page_name == "song_mood" else "photo.png")
            if page_name == "song_mood":
                path.write_bytes(wav_bytes(music_like(8.0), 22050))
            else:
                import cv2
                import numpy as np

                cv2.imwrite(str(path), np.full((240, 320, 3), 128, np.uint8))
            t = time.monotonic()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
            page.locator(RESULT[page_name]).first.wait_for(state="visible", timeout=TIMEOUT_MS)
            _idle(page)
            result = time.monotonic() - t
        page.close()
    return {"page": page_name, "server up s": up, "title s": title, "usable s": usable, "ready s": ready,
            "RSS at ready MB": rss_mb, "first result s": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", default="song_mood,face_expression,compare_variants")
    parser.add_argument("--runs", type=int, default=1)
    add_report_option(parser, "cold_start")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for _ in range(args.runs):
            for name in args.pages.split(","):
                rows.append(one_run(browser, name, Path(tmp)))
        browser.close()
    with Report("cold_start", args.json) as report:
        report.figures.update({"goal_usable_s": GOAL_USABLE_S, "goal_ready_s": GOAL_READY_S,
                               "goal_rss_mb": GOAL_RSS_MB, "runs": rows})
        print(f"| page | server up s | title s | usable s | ready s | RSS at ready MB | first result s (after ready) "
              f"| goals: usable <= {GOAL_USABLE_S:.0f} s; Song page ready <= {GOAL_READY_S:.0f} s and <= "
              f"{GOAL_RSS_MB:.0f} MB |")
        print("|---|---|---|---|---|---|---|---|")
        for r in rows:
            r["goal_met"] = r["usable s"] <= GOAL_USABLE_S and (
                r["page"] != "song_mood" or (r["ready s"] <= GOAL_READY_S and r["RSS at ready MB"] <= GOAL_RSS_MB))
            first = "" if r["first result s"] is None else f"{r['first result s']:.1f}"
            print(f"| {r['page']} | {r['server up s']:.1f} | {r['title s']:.1f} | {r['usable s']:.1f} | "
                  f"{r['ready s']:.1f} | {r['RSS at ready MB']:.0f} | {first} | {'met' if r['goal_met'] else 'NOT met'} |")
        print(load_note())


if __name__ == "__main__":
    main()
