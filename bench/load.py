"""Many people at once: N browser sessions upload a song or a photo together and wait for the result.

    .venv/bin/python bench/load.py                       # N = 1, 4, 8; songs and photos; 3 rounds each
    .venv/bin/python bench/load.py --sessions 1,8 --tasks face --rounds 5
    .venv/bin/python bench/load.py --in-a-row 200        # one session, 200 analyses: server RSS growth
    .venv/bin/python bench/load.py --in-a-row 200 --keep-files   # ... each upload added to the ones before

Starts `streamlit run streamlit_app.py` on a free localhost port and drives it with Debian's Chromium
through Playwright, one browser context (one Streamlit session) per person. Every session first opens
its page; when all are ready they upload at the same moment. Time to result ("drawn"): from the
upload to the result drawn on the page (the mood map with this session's song in it; the picture
with its faces). "Arrived": until the result's element is in the page, before the browser draws it;
the browser runs on the same machine, so on a small one its drawing competes with the server.
An error is a Python exception or an error message on the page, or a browser failure; a lost result
is one that did not appear within --timeout (or showed another session's song).
The server's memory is read from /proc (VmRSS, sampled every 0.2 s; VmHWM at the end) for the server
process and its children, and its CPU time per session (utime + stime over a round, opening the page
included) shows how much of the wait is queueing for the CPU.

Goals: no errors or lost results at N = 8; p95 at N = 8 under 4x p95 at N = 1; in a row, RSS after
the last analysis at most 10% above RSS after the first 20.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import FER_FILE, MUSIC_DIR, music_like, wav_bytes  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
PAGES = {"song": ("song_mood", "Song mood"), "face": ("face_expression", "Face expression")}
OUT = ROOT / "test-output"


# ---------------------------------------------------------------- inputs

def song_input() -> tuple[bytes, str]:
    """A real 30-s mp3 demo clip, else a generated 30-s wav."""
    clips = sorted((MUSIC_DIR / "clips").glob("*.mp3"))
    if clips:
        return clips[0].read_bytes(), "audio/mpeg"
    return wav_bytes(music_like(30.0), 22050), "audio/wav"


def photo_input() -> bytes:
    """640x480, one FER2013 PublicTest face at 200 px (a mid-grey square without ../shared)."""
    frame = np.full((480, 640), 128, np.uint8)
    face = np.full((48, 48), 90, np.uint8)
    if FER_FILE.exists():
        with np.load(FER_FILE) as npz:
            face = npz["pixels"][np.flatnonzero(npz["usage"] == 1)[1]]
    frame[140:340, 220:420] = cv2.resize(face, (200, 200), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".png", frame)[1].tobytes()


def varied_song(i: int) -> bytes:
    """A different 30-s wav for each i, so no cache can answer it."""
    return wav_bytes(music_like(30.0, seed=i), 22050)


def varied_photo(base: bytes, i: int) -> bytes:
    image = cv2.imdecode(np.frombuffer(base, np.uint8), cv2.IMREAD_GRAYSCALE)
    image[:4] = np.random.default_rng(i).integers(0, 256, (4, image.shape[1]), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


# ---------------------------------------------------------------- the server and its memory

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """pid and its descendants, from /proc/*/stat (no psutil)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of pid and its descendants so far."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    return sum(_proc_kib(p, "VmRSS") for p in process_tree(pid)) / 1024


def hwm_mib(pid: int) -> float:
    return sum(_proc_kib(p, "VmHWM") for p in process_tree(pid)) / 1024


class RssSampler:
    """Samples the server tree's summed VmRSS every interval_s in a thread; .peak() since the last reset."""

    def __init__(self, pid: int, interval_s: float = 0.2):
        self.pid, self.interval_s, self._peak = pid, interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, rss_mib(self.pid))

    def reset(self) -> None:
        self._peak = rss_mib(self.pid)

    def peak(self) -> float:
        return max(self._peak, rss_mib(self.pid))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Server:
    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / "streamlit.log"
        streamlit = Path(sys.executable).parent / "streamlit"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [str(streamlit), "run", "streamlit_app.py", "--server.port", str(self.port),
                 "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no health reply after 120 s:\n{self.log_tail()}")
            time.sleep(0.3)

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------- one person

@dataclass
class Outcome:
    task: str
    seconds: float | None = None   # upload -> result drawn on the page (what a person waits for)
    arrived_s: float | None = None  # upload -> the result's element in the page (server work + transfer)
    error: str = ""                # exception / error message / browser failure
    lost: bool = False             # no result within the timeout, or another session's


async def wait_idle(page, timeout_ms: float) -> None:
    await page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stApp\"]')?.dataset.testScriptState === 'notRunning'",
        timeout=timeout_ms)


async def open_page(browser, url: str, task: str, timeout_ms: float):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    path, title = PAGES[task]
    await page.goto(f"{url}/{path}")
    await page.locator(f'h1:has-text("{title}")').first.wait_for(state="visible")
    await wait_idle(page, timeout_ms)
    if task == "face":
        await page.get_by_role("tab", name=re.compile(r"Photo$")).click()
    return context, page


# What the page shows, read in the browser. args: {name, previous_src, charts_before}.
_FAILED = ("""() => !!document.querySelector('[data-testid="stMain"] [data-testid="stException"], """
           """[data-testid="stMain"] [data-testid="stAlertContentError"]')""")
_BEFORE = """() => { const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img');
                     return {charts_before: document.querySelectorAll('[data-testid="stMain"] [data-testid="stPlotlyChart"]').length,
                             previous_src: img ? img.getAttribute('src') : null}; }"""
_ARRIVED = {  # the result's element is in the page (before the browser has drawn it)
    "song": """(a) => { const charts = document.querySelectorAll('[data-testid="stMain"] [data-testid="stPlotlyChart"]');
                        return charts.length > a.charts_before || [...charts].some(c => c.textContent.includes(a.name)); }""",
    "face": """(a) => { const img = document.querySelector('[data-testid="stMain"] [data-testid="stImage"] img');
                        return !!img && img.getAttribute('src') !== a.previous_src; }""",
}
_DRAWN = {  # the result as a person sees it: this session's song on the mood map; the new picture with its faces
    "song": """(a) => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stPlotlyChart"]')]
                      .some(c => c.textContent.includes('Mood map') && c.textContent.includes(a.name))""",
    "face": """(a) => { const box = document.querySelector('[data-testid="stMain"] [data-testid="stImage"]');
                        const img = box && box.querySelector('img');
                        return !!img && img.getAttribute('src') !== a.previous_src && img.complete
                               && img.naturalWidth > 0 && box.textContent.includes('face(s) found'); }""",
}


async def upload_and_wait(page, task: str, name: str, data: bytes, mime: str, timeout_ms: float) -> Outcome:
    """Upload one file on a ready page (fresh, or showing an earlier result); the time until its result shows."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    outcome = Outcome(task)
    main = page.locator('[data-testid="stMain"]')
    args = {"name": name, **await page.evaluate(_BEFORE)}
    either = "(a) => (%s)() || (%s)(a)"
    start = time.perf_counter()
    try:
        await page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            files=[{"name": name, "mimeType": mime, "buffer": data}])
        await page.wait_for_function(either % (_FAILED, _ARRIVED[task]), arg=args, timeout=timeout_ms)
        arrived_s = time.perf_counter() - start
        await page.wait_for_function(either % (_FAILED, _DRAWN[task]), arg=args, timeout=timeout_ms)
        drawn_s = time.perf_counter() - start
        await wait_idle(page, timeout_ms)
        if await page.evaluate(_FAILED):
            failure = main.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
            outcome.error = (await failure.first.inner_text())[:200]
        else:
            outcome.seconds, outcome.arrived_s = drawn_s, arrived_s
    except PlaywrightTimeout:
        outcome.lost = True
        with contextlib.suppress(Exception):  # what the person saw instead, for the report
            OUT.mkdir(exist_ok=True)
            await page.screenshot(path=str(OUT / f"load_lost_{Path(name).stem}.png"), full_page=True)
            outcome.error = "lost; page shows: " + " ".join((await main.inner_text()).split())[:300]
    except Exception as e:  # the browser or the connection failed: count it, keep going
        outcome.error = f"{type(e).__name__}: {str(e)[:200]}"
    return outcome


async def person(browser, url: str, task: str, name: str, data: bytes, mime: str, ready: asyncio.Barrier,
                 timeout_ms: float) -> Outcome:
    context = None
    try:
        context, page = await open_page(browser, url, task, timeout_ms)
        await ready.wait()  # everyone uploads at the same moment
        return await upload_and_wait(page, task, name, data, mime, timeout_ms)
    except Exception as e:
        if not ready.broken:
            await ready.abort()  # the others stop waiting for this one
        return Outcome(task, error=f"{type(e).__name__}: {str(e)[:200]}")
    finally:
        if context is not None:
            await context.close()


# ---------------------------------------------------------------- the runs

@dataclass
class Round:
    task: str
    sessions: int
    outcomes: list[Outcome] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    server_cpu_s: float = 0.0      # CPU time the server tree used over the round (pages opened too)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of a non-empty list."""
    return float(np.percentile(values, q))


async def run_load(args, server: Server, sampler: RssSampler) -> list[Round]:
    from playwright.async_api import async_playwright

    song, song_mime = song_input()
    photo = photo_input()
    inputs = {"song": (song, song_mime, "mp3" if song_mime == "audio/mpeg" else "wav"), "face": (photo, "image/png", "png")}
    timeout_ms = args.timeout * 1000
    rounds: list[Round] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        for task in args.tasks:  # warm-up: the model loads and traces on its page's first use
            data, mime, ext = inputs[task]
            context, page = await open_page(browser, server.url, task, timeout_ms)
            warm = await upload_and_wait(page, task, f"warmup.{ext}", data, mime, timeout_ms)
            await context.close()
            print(f"warm-up {task}: {warm}", flush=True)
        for task in args.tasks:
            data, mime, ext = inputs[task]
            for n in args.sessions:
                record = Round(task, n)
                sampler.reset()
                cpu_before = cpu_s(server.process.pid)
                for r in range(args.rounds):
                    ready = asyncio.Barrier(n)
                    record.outcomes += await asyncio.gather(*[
                        person(browser, server.url, task, f"{task}_n{n}_r{r}_s{i}.{ext}", data, mime, ready,
                               timeout_ms) for i in range(n)])
                record.peak_rss_mib = sampler.peak()
                record.server_cpu_s = cpu_s(server.process.pid) - cpu_before
                rounds.append(record)
                print(summary_line(record), flush=True)
        await browser.close()
    return rounds


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} / {percentile(values, 95):6.2f}" if values else "     - /      -"


def summary_line(record: Round) -> str:
    times = [o.seconds for o in record.outcomes if o.seconds is not None]
    arrived = [o.arrived_s for o in record.outcomes if o.arrived_s is not None]
    errors = sum(1 for o in record.outcomes if o.error)
    lost = sum(1 for o in record.outcomes if o.lost)
    return (f"{record.task:5s} N={record.sessions:<2d} results {len(times):3d}/{len(record.outcomes):<3d} "
            f"drawn median/p95 {_stats(times)} s  arrived {_stats(arrived)} s  errors {errors}  lost {lost}  "
            f"peak RSS {record.peak_rss_mib:5.0f} MiB  server CPU {record.server_cpu_s / len(record.outcomes):5.2f} s/session")


def report(rounds: list[Round], server: Server) -> dict:
    print("\n| task | N | results | median s | p95 s | arrived median s | arrived p95 s | errors | lost | "
          "server peak RSS MiB | server CPU s per session |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = {}
    for record in rounds:
        times = [o.seconds for o in record.outcomes if o.seconds is not None]
        arrived = [o.arrived_s for o in record.outcomes if o.arrived_s is not None]
        errors = sum(1 for o in record.outcomes if o.error)
        lost = sum(1 for o in record.outcomes if o.lost)
        nan = float("nan")
        print(f"| {record.task} | {record.sessions} | {len(times)}/{len(record.outcomes)} | "
              f"{statistics.median(times) if times else nan:.2f} | {percentile(times, 95) if times else nan:.2f} | "
              f"{statistics.median(arrived) if arrived else nan:.2f} | "
              f"{percentile(arrived, 95) if arrived else nan:.2f} | {errors} | {lost} | "
              f"{record.peak_rss_mib:.0f} | {record.server_cpu_s / len(record.outcomes):.2f} |")
    for task in {r.task for r in rounds}:
        by_n = {r.sessions: r for r in rounds if r.task == task}
        if 1 in by_n and max(by_n) > 1:
            top = by_n[max(by_n)]
            t1 = [o.seconds for o in by_n[1].outcomes if o.seconds is not None]
            tn = [o.seconds for o in top.outcomes if o.seconds is not None]
            clean = not any(o.error or o.lost for o in top.outcomes)
            ratio = percentile(tn, 95) / percentile(t1, 95) if t1 and tn else float("nan")
            verdicts[task] = {"no_errors_or_lost_at_max_n": clean, "p95_ratio": ratio, "p95_goal_met": ratio < 4}
            print(f"{task}: N={top.sessions} {'no errors or lost results' if clean else 'ERRORS OR LOST RESULTS'}; "
                  f"p95 N={top.sessions} / p95 N=1 = {ratio:.2f} (goal < 4: {'met' if ratio < 4 else 'NOT met'})")
    print(f"server VmHWM (peak RSS, whole run): {hwm_mib(server.process.pid):.0f} MiB")
    for record in rounds:
        for o in record.outcomes:
            if o.error:
                print(f"  error ({record.task}, N={record.sessions}): {o.error}")
    return verdicts


async def remove_uploads(page, timeout_ms: float) -> None:
    """Click the delete button of every uploaded file, as a person replacing a file does (the browser
    then tells the server to drop it; the song page's uploader otherwise keeps adding files)."""
    chips = '[data-testid="stMain"] [data-testid="stFileChipDeleteBtn"] button'
    while n := await page.locator(chips).count():
        await page.locator(chips).first.click()
        await page.wait_for_function(f"() => document.querySelectorAll('{chips}').length < {n}", timeout=timeout_ms)
    # Upload only once the page shows it has no file: a file chosen while the removal's rerun is on
    # its way can be dropped by it (seen here about once in 30 photos).
    await page.locator('[data-testid="stMain"]').get_by_text(re.compile(r"^No (song|picture) yet")).wait_for(
        state="visible", timeout=timeout_ms)
    await wait_idle(page, timeout_ms)


async def run_in_a_row(args, server: Server) -> dict:
    """One session, args.in_a_row analyses (songs and photos alternating, each different)."""
    from playwright.async_api import async_playwright

    photo = photo_input()
    timeout_ms = args.timeout * 1000
    rss: dict[int, float] = {}
    failures = 0
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        pages = {task: await open_page(browser, server.url, task, timeout_ms) for task in ("song", "face")}
        started = time.perf_counter()
        for i in range(1, args.in_a_row + 1):
            task = "song" if i % 2 else "face"
            data, mime, name = ((varied_song(i), "audio/wav", f"song_{i}.wav") if task == "song"
                                else (varied_photo(photo, i), "image/png", f"photo_{i}.png"))
            if not args.keep_files:
                await remove_uploads(pages[task][1], timeout_ms)
            outcome = await upload_and_wait(pages[task][1], task, name, data, mime, timeout_ms)
            failures += outcome.seconds is None
            rss[i] = rss_mib(server.process.pid)
            if i in (1, 20, args.in_a_row) or i % 10 == 0 or outcome.seconds is None:
                print(f"  {i:4d} analyses: server RSS {rss[i]:7.1f} MiB  ({time.perf_counter() - started:.0f} s)"
                      + ("" if outcome.seconds is not None else f"  FAILED: {outcome}"), flush=True)
        for context, _ in pages.values():
            await context.close()
        await browser.close()
    after_20, after_all = rss[min(20, args.in_a_row)], rss[args.in_a_row]
    growth = 100 * (after_all - after_20) / after_20
    print(f"{'uploads kept' if args.keep_files else 'each upload removed before the next'}: "
          f"server RSS after 20: {after_20:.1f} MiB; after {args.in_a_row}: {after_all:.1f} MiB; growth "
          f"{growth:+.1f}% (goal <= 10%: {'met' if growth <= 10 else 'NOT met'}); failed analyses: {failures}")
    return {"keep_files": args.keep_files, "rss_after_20_mib": after_20, "rss_after_all_mib": after_all, "growth_percent": growth,
            "analyses": args.in_a_row, "failures": failures, "rss_by_analysis": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,4,8", help="comma-separated N (default 1,4,8)")
    parser.add_argument("--tasks", default="song,face", help="song, face or both (default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of N simultaneous sessions per N")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a session waits for its result")
    parser.add_argument("--in-a-row", type=int, default=0, help="instead: one session, this many analyses")
    parser.add_argument("--keep-files", action="store_true",
                        help="in a row: leave every upload in the uploader (default: remove the last one first)")
    args = parser.parse_args()
    args.sessions = [int(n) for n in args.sessions.split(",")]
    args.tasks = args.tasks.split(",")
    if not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="moodlens-load-") as log_dir:
        server = Server(Path(log_dir))
        sampler = RssSampler(server.process.pid)
        print(f"server pid {server.process.pid} on {server.url}, RSS {rss_mib(server.process.pid):.0f} MiB", flush=True)
        try:
            if args.in_a_row:
                result = asyncio.run(run_in_a_row(args, server))
                (OUT / "load_in_a_row.json").write_text(json.dumps(result, indent=1))
            else:
                rounds = asyncio.run(run_load(args, server, sampler))
                verdicts = report(rounds, server)
                (OUT / "load.json").write_text(json.dumps(
                    {"rounds": [asdict(r) for r in rounds], "verdicts": verdicts,
                     "server_vmhwm_mib": hwm_mib(server.process.pid)}, indent=1))
        finally:
            sampler.stop()
            print(f"load average at end {os.getloadavg()[0]:.1f}", flush=True)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
