"""Many people at once: N sessions upload a song or a photo together and wait for the result.

    python -m bench.load                       # N = 1, 4, 8; songs and photos; 3 rounds each
    python -m bench.load --sessions 1,8 --tasks face --rounds 5
    python -m bench.load --clients browser     # one Chromium context per person instead
    python -m bench.load --clients probe --rounds 10   # one person in Chromium, the rest ws
    python -m bench.load --in-a-row 200        # one session, 200 analyses: server RSS growth
    python -m bench.load --in-a-row 200 --keep-files --wait-after-close 150
                                        # ... each upload added to the ones before; RSS once the session is gone

Starts `streamlit run streamlit_app.py` on a free localhost port. Each person is one Streamlit
session on their page:
- `--clients ws` (default): a websocket client that speaks the browser's protocol
  (tests/streamlit_client.py): it opens the page, uploads through the upload route, sends the
  uploader's new state, reads the page's elements and fetches the face picture, as a browser tab
  does, but draws nothing. This measures the server: a person's browser draws on their own machine.
- `--clients browser`: Debian's Chromium through Playwright, one browser context per person. On a
  small machine the browsers' drawing takes most of the CPU (docs/performance.md), so this
  measures mostly the browsers.
- `--clients probe`: person 0 in Chromium, the other N - 1 websocket clients: what one person sees
  in their own browser while N - 1 others use the server at the same moment.
Every session first opens its page; when all are ready they upload at the same moment, each a
different file (a different demo clip or photo), so no cache could answer one for another.
--rounds is the number of rounds at the largest N; a smaller N gets as many rounds as give it the
same number of results (N = 1: 8 x --rounds), so that every N's p95 is estimated from as many
samples (a p95 of 3 is the largest of 3). In probe mode, where one person a round is timed in the
browser, every N gets --rounds rounds.

Time to result, from choosing the file:
- ws: "result" until the script run that analyses it has finished and, for a photo, the picture
  with its boxes is fetched; "arrived" until the result element (the mood map with this session's
  song, the picture) reached the client.
- browser: "result" until the result is drawn on the page; "arrived" until its element is in the page.
An error is an exception or an error message on the page, or a client failure; a lost result
is one that did not come within --timeout (or showed another session's song).
The server's memory is read from /proc (VmRSS, sampled every 0.2 s; VmHWM at the end) for the server
process and its children, and its CPU time per session (utime + stime over a round, opening the page
included) shows how much of the wait is queueing for the CPU. The whole machine's busy and idle
CPU time from the uploads to the last result (/proc/stat: every process, the clients too) shows how
much of that window no scheduling used: the verdict line's "busy" share, and the machine's floor
(all its work in the window over its CPUs, the soonest a scheduler that never idled could finish).

Goals: no errors or lost results at N = 8; p95 at N = 8 under 4x p95 at N = 1; in a row, RSS after
the last analysis at most 10% above RSS after the first 20.

The report (--json, by default bench/results/load.json, or load_in_a_row.json with --in-a-row) holds
the printed summary and every round's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench.common import (CLIPS_DIR, FER_FILE, RESULTS_DIR, ROOT, Report, face_in_frame, fer_faces,
                          load_average)
from tests.conftest import music_like, wav_bytes
from tests.live_server import LiveServer
from tests.streamlit_client import SessionClient

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]
PAGES = {"song": ("song_mood", "Song mood"), "face": ("face_expression", "Face expression")}
# The caption of the Face page's result picture: "1 face found, ...", "3 faces found, ...".
FACE_RESULT = re.compile(r"\b\d+ faces? found\b")
OUT = ROOT / "test-output"  # screenshots of lost results


# ---------------------------------------------------------------- inputs

def song_input(i: int = 0) -> tuple[bytes, str]:
    """A real 30-s mp3 demo clip (the i-th, round the list), else a generated 30-s wav (seeded by i)."""
    clips = sorted(CLIPS_DIR.glob("*.mp3"))
    if clips:
        return clips[i % len(clips)].read_bytes(), "audio/mpeg"
    return wav_bytes(music_like(30.0, seed=i), 22050), "audio/wav"


def photo_input() -> bytes:
    """640x480, one FER2013 PublicTest face at 200 px, centred (a mid-grey square without ../shared)."""
    face = fer_faces(1, start=1)[0] if FER_FILE.exists() else np.full((48, 48), 90, np.uint8)
    return cv2.imencode(".png", face_in_frame(face, 200, bgr=False))[1].tobytes()


def varied_song(i: int) -> bytes:
    """A different 30-s wav for each i, so no cache can answer it."""
    return wav_bytes(music_like(30.0, seed=i), 22050)


def varied_photo(base: bytes, i: int) -> bytes:
    image = cv2.imdecode(np.frombuffer(base, np.uint8), cv2.IMREAD_GRAYSCALE)
    image[:4] = np.random.default_rng(i).integers(0, 256, (4, image.shape[1]), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def session_input(task: str, i: int, photo: bytes) -> tuple[bytes, str, str]:
    """Session i's file: (data, mime, extension), different for every i."""
    if task == "song":
        data, mime = song_input(i)
        return data, mime, "mp3" if mime == "audio/mpeg" else "wav"
    return (photo if i == 0 else varied_photo(photo, i)), "image/png", "png"


# ---------------------------------------------------------------- the server and its memory

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


def machine_cpu_s() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, all CPUs (/proc/stat): every process
    counts, the clients and anything else running here too."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / hz, (idle + iowait) / hz


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


# ---------------------------------------------------------------- one person

@dataclass
class Outcome:
    task: str
    seconds: float | None = None   # upload -> result drawn on the page (what a person waits for)
    arrived_s: float | None = None  # upload -> the result's element in the page (server work + transfer)
    error: str = ""                # exception / error message / browser failure
    lost: bool = False             # no result within the timeout, or another session's
    client: str = ""               # "browser" or "ws"


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
    # Settled, as a person sees it before choosing a file: nothing loading, every chart drawn.
    # (Choosing a file the moment the title shows measures the page's own opening instead.)
    await page.wait_for_load_state("networkidle")
    await page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stPlotlyChart"]')]
                 .every(c => c.querySelector('.main-svg'))""", timeout=timeout_ms)
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
                               && img.naturalWidth > 0 && /\\b\\d+ faces? found\\b/.test(box.textContent); }""",
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


class BrowserPerson:
    """One person in Chromium: a browser context on the task's page."""
    kind = "browser"

    def __init__(self, browser, url: str, task: str, timeout_ms: float):
        self.browser, self.url, self.task, self.timeout_ms = browser, url, task, timeout_ms
        self.context = self.page = None

    async def open(self) -> None:
        self.context, self.page = await open_page(self.browser, self.url, self.task, self.timeout_ms)

    async def upload(self, name: str, data: bytes, mime: str, replace: bool = False) -> Outcome:
        if replace:
            await remove_uploads(self.page, self.timeout_ms)
        return await upload_and_wait(self.page, self.task, name, data, mime, self.timeout_ms)

    async def close(self) -> None:
        if self.context is not None:
            await self.context.close()


class WsPerson:
    """One person as a websocket client (tests/streamlit_client.py) on the task's page."""
    kind = "ws"

    def __init__(self, url: str, task: str, timeout_ms: float):
        self.task = task
        self.session = SessionClient(url, PAGES[task][0], timeout_s=timeout_ms / 1000)

    async def open(self) -> None:
        run = await self.session.open()
        if run.errors or not self.session.uploader_id:
            raise RuntimeError(f"the page did not open cleanly: {run.errors or 'no file uploader'}")

    async def upload(self, name: str, data: bytes, mime: str, replace: bool = True) -> Outcome:
        outcome = Outcome(self.task)
        try:
            run = await self.session.upload(name, data, mime, replace=replace)
        except asyncio.TimeoutError:
            outcome.lost, outcome.error = True, "lost: no end of the run within the timeout"
            return outcome
        except Exception as e:  # the connection or the server failed: count it, keep going
            outcome.error = f"{type(e).__name__}: {str(e)[:200]}"
            return outcome
        if run.errors:
            outcome.error = run.errors[0][:200]
            return outcome
        if self.task == "song":  # the mood map, with this session's song on it
            arrived = run.seconds_to(lambda e: e.WhichOneof("type") == "plotly_chart"
                                     and "Mood map" in e.plotly_chart.spec and name in e.plotly_chart.spec)
            done = run.finished_s
        else:  # the picture with its boxes, fetched as the browser would to show it
            arrived = run.seconds_to(lambda e: e.WhichOneof("type") == "imgs"
                                     and FACE_RESULT.search(e.imgs.imgs[0].caption))
            picture = run.find(lambda e: e.WhichOneof("type") == "imgs")
            if arrived is not None and not await self.session.fetch(picture.imgs.imgs[0].url):
                arrived = None
            done = time.perf_counter() - run.started
        if arrived is None:
            outcome.lost, outcome.error = True, "lost: the run ended without this session's result"
        else:
            outcome.seconds, outcome.arrived_s = done, arrived
        return outcome

    async def close(self) -> None:
        await self.session.close()


@contextlib.asynccontextmanager
async def people(kind: str, url: str, timeout_ms: float):
    """A factory of people of the kind asked for: new_person(task, i) -> an unopened person i.
    kind "probe": person 0 in Chromium, the others websocket clients."""
    if kind == "ws":
        yield lambda task, i=0: WsPerson(url, task, timeout_ms)
        return
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield lambda task, i=0: (BrowserPerson(browser, url, task, timeout_ms) if kind == "browser" or i == 0
                                     else WsPerson(url, task, timeout_ms))
        finally:
            await browser.close()


async def one_person(new_person, i: int, task: str, name: str, data: bytes, mime: str,
                     ready: asyncio.Barrier) -> Outcome:
    """Open the page, wait until everyone is ready, upload, wait for the result."""
    person = new_person(task, i)
    try:
        await person.open()
        await ready.wait()  # everyone uploads at the same moment
        outcome = await person.upload(name, data, mime)
    except Exception as e:
        if not ready.broken:
            await ready.abort()  # the others stop waiting for this one
        outcome = Outcome(task, error=f"{type(e).__name__}: {str(e)[:200]}")
    finally:
        with contextlib.suppress(Exception):
            await person.close()
    outcome.client = person.kind
    return outcome


# ---------------------------------------------------------------- the runs

@dataclass
class Round:
    task: str
    sessions: int
    outcomes: list[Outcome] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    server_cpu_s: float = 0.0      # CPU time the server tree used over the round (pages opened too)
    client_cpu_s: float = 0.0      # CPU time of this process (the ws clients; not the browsers)
    upload_cpu_s: float = 0.0      # server CPU time from the moment all upload to the last result
    machine_busy_s: float = 0.0    # the same window, the whole machine's busy CPU time (all processes)
    machine_idle_s: float = 0.0    # ... and its idle CPU time: what no scheduling used


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of a non-empty list."""
    return float(np.percentile(values, q))


async def _cpu_when_ready(ready: asyncio.Barrier, pid: int) -> tuple[float, tuple[float, float]] | None:
    """The server's CPU seconds and the machine's (busy, idle) at the moment everyone uploads (None
    if a person failed first)."""
    try:
        await ready.wait()
    except asyncio.BrokenBarrierError:
        return None
    return cpu_s(pid), machine_cpu_s()


async def server_idle(pid: int, quiet_cpu_s: float = 0.05, over_s: float = 1.0, timeout_s: float = 180) -> None:
    """Wait until the server (and its workers) used under quiet_cpu_s of CPU time over over_s: its
    loading on the warm-up thread (the other page's models, Grad-CAM's traced functions) must not
    run beside the first rounds, where it slowed N = 1 and flattered the ratio."""
    deadline = time.monotonic() + timeout_s
    before = cpu_s(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(over_s)
        now = cpu_s(pid)
        if now - before < quiet_cpu_s:
            return
        before = now
    print(f"warning: the server was still busy after {timeout_s:.0f} s; measuring anyway", flush=True)


def rounds_of(record: Round) -> int:
    """How many rounds of N sessions a record holds."""
    return max(1, len(record.outcomes) // record.sessions)


def rounds_at(args, n: int) -> int:
    """Rounds at N: enough for as many timed results as --rounds at the largest N gives."""
    return args.rounds if args.clients == "probe" else math.ceil(args.rounds * max(args.sessions) / n)


async def run_load(args, server: LiveServer, sampler: RssSampler) -> list[Round]:
    photo = photo_input()
    rounds: list[Round] = []
    async with people(args.clients, server.url, args.timeout * 1000) as new_person:
        for task in args.tasks:  # warm-up: the model loads and traces on its page's first use
            data, mime, ext = session_input(task, 0, photo)
            person = new_person(task)
            await person.open()
            warm = await person.upload(f"warmup.{ext}", data, mime)
            if not args.summary or warm.seconds is None:
                print(f"warm-up {task}: {warm}", flush=True)
            await person.close()
        await server_idle(server.pid)
        for task in args.tasks:
            for n in args.sessions:
                record = Round(task, n)
                sampler.reset()
                cpu_before, client_cpu_before = cpu_s(server.pid), time.process_time()
                for r in range(rounds_at(args, n)):
                    ready = asyncio.Barrier(n + 1)  # the people, and the clock below
                    clock = asyncio.ensure_future(_cpu_when_ready(ready, server.pid))
                    files = [session_input(task, i, photo) for i in range(n)]
                    record.outcomes += await asyncio.gather(*[
                        one_person(new_person, i, task, f"{task}_n{n}_r{r}_s{i}.{ext}", data, mime, ready)
                        for i, (data, mime, ext) in enumerate(files)])
                    if (started := await clock) is not None:
                        (busy, idle), server_cpu = machine_cpu_s(), cpu_s(server.pid)
                        record.upload_cpu_s += server_cpu - started[0]
                        record.machine_busy_s += busy - started[1][0]
                        record.machine_idle_s += idle - started[1][1]
                record.peak_rss_mib = sampler.peak()
                record.server_cpu_s = cpu_s(server.pid) - cpu_before
                record.client_cpu_s = time.process_time() - client_cpu_before
                rounds.append(record)
                if not args.summary:
                    print(summary_line(record), flush=True)
    return rounds


def round_figures(record: Round, client: str | None = None) -> dict:
    """A round's figures over its sessions of one client kind (all sessions when None)."""
    outcomes = [o for o in record.outcomes if client is None or o.client == client]
    times = [o.seconds for o in outcomes if o.seconds is not None]
    arrived = [o.arrived_s for o in outcomes if o.arrived_s is not None]
    nan = float("nan")
    return {"client": client or "all", "results": len(times), "sessions": len(outcomes),
            "median_s": statistics.median(times) if times else nan, "p95_s": percentile(times, 95) if times else nan,
            "arrived_median_s": statistics.median(arrived) if arrived else nan,
            "arrived_p95_s": percentile(arrived, 95) if arrived else nan,
            "errors": sum(1 for o in outcomes if o.error), "lost": sum(1 for o in outcomes if o.lost),
            "server_cpu_s_per_session": record.server_cpu_s / len(record.outcomes),
            "upload_cpu_s_per_session": record.upload_cpu_s / len(record.outcomes),
            "client_cpu_s_per_session": record.client_cpu_s / len(record.outcomes),
            "machine_busy_share": record.machine_busy_s / max(record.machine_busy_s + record.machine_idle_s, 1e-9)}


def clients_of(record: Round) -> list[str]:
    return sorted({o.client for o in record.outcomes})


def summary_line(record: Round) -> str:
    lines = []
    for client in clients_of(record):
        f = round_figures(record, client)
        lines.append(
            f"{record.task:5s} N={record.sessions:<2d} {client:7s} results {f['results']:3d}/{f['sessions']:<3d} "
            f"median/p95 {f['median_s']:6.2f} / {f['p95_s']:6.2f} s  arrived {f['arrived_median_s']:6.2f} / "
            f"{f['arrived_p95_s']:6.2f} s  errors {f['errors']}  lost {f['lost']}  peak RSS {record.peak_rss_mib:5.0f} MiB  "
            f"CPU s/session: server {f['server_cpu_s_per_session']:5.2f}, this process {f['client_cpu_s_per_session']:5.2f}")
    return "\n".join(lines)


def report_rounds(rounds: list[Round], server: LiveServer, clients: str) -> dict:
    print()
    print("| task | N | client | results | median s | p95 s | arrived median s | arrived p95 s | errors | lost | "
          "server peak RSS MiB | server CPU s per session | of it, after the upload |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for record in rounds:
        for client in clients_of(record):
            f = round_figures(record, client)
            print(f"| {record.task} | {record.sessions} | {client} | {f['results']}/{f['sessions']} | "
                  f"{f['median_s']:.2f} | {f['p95_s']:.2f} | {f['arrived_median_s']:.2f} | {f['arrived_p95_s']:.2f} | "
                  f"{f['errors']} | {f['lost']} | {record.peak_rss_mib:.0f} | {f['server_cpu_s_per_session']:.2f} | "
                  f"{f['upload_cpu_s_per_session']:.3f} |")
    verdicts = {}
    for task in dict.fromkeys(r.task for r in rounds):
        by_n = {r.sessions: r for r in rounds if r.task == task}
        if 1 not in by_n or max(by_n) == 1:
            continue
        top = by_n[max(by_n)]
        clean = not any(o.error or o.lost for o in top.outcomes)
        # With every session's work on the CPU at once, the last result cannot come before
        # N x (server CPU per upload) / CPUs: the floor of p95 at N for any scheduling.
        floor_s = top.sessions * round_figures(top)["upload_cpu_s_per_session"] / os.cpu_count()
        # The same for all the work on the machine in those moments (the clients' too): what a
        # scheduler that never left a CPU idle could reach, at best.
        busy_share = round_figures(top)["machine_busy_share"]
        machine_floor_s = top.machine_busy_s / rounds_of(top) / os.cpu_count()
        for client in clients_of(by_n[1]):
            p95_1 = round_figures(by_n[1], client)["p95_s"]
            ratio = round_figures(top, client)["p95_s"] / p95_1
            verdicts[f"{task} {client}"] = {"no_errors_or_lost_at_max_n": clean, "p95_ratio": ratio,
                                            "p95_goal_met": ratio < 4, "cpu_floor_s": floor_s,
                                            "cpu_floor_ratio": floor_s / p95_1,
                                            "machine_busy_share": busy_share,
                                            "machine_floor_s": machine_floor_s,
                                            "machine_floor_ratio": machine_floor_s / p95_1}
            print(f"{task}, {client} sessions: N={top.sessions} {'no errors or lost results' if clean else 'ERRORS OR LOST RESULTS'}; "
                  f"p95 N={top.sessions} / p95 N=1 = {ratio:.2f} (goal < 4: {'met' if ratio < 4 else 'NOT met'}); "
                  f"CPU floor {floor_s:.2f} s = {floor_s / p95_1:.2f} x p95 N=1"
                  # the websocket clients share the server's cores (a browser's CPU is not counted)
                  + (f"; the clients' own CPU at N={top.sessions}: "
                     f"{1000 * round_figures(top)['client_cpu_s_per_session']:.0f} ms a session" if client == "ws" else "")
                  + f"; the machine's CPUs were busy {100 * busy_share:.0f}% of the time from the uploads to the last "
                    f"result, and all its work then (clients included) / {os.cpu_count()} CPUs = {machine_floor_s:.2f} s "
                    f"a round = {machine_floor_s / p95_1:.2f} x p95 N=1")
    print(f"server VmHWM (peak RSS, whole run): {hwm_mib(server.pid):.0f} MiB")
    for record in rounds:
        for o in record.outcomes:
            if o.error:
                print(f"  error ({record.task}, N={record.sessions}, {o.client}): {o.error}")
    return verdicts


async def remove_uploads(page, timeout_ms: float) -> None:
    """Click the delete button of every uploaded file, as a person replacing a file does (the browser
    then tells the server to drop it; the song page's uploader otherwise keeps adding files)."""
    chips = '[data-testid="stMain"] [data-testid="stFileChipDeleteBtn"] button'
    while n := await page.locator(chips).count():
        await page.locator(chips).first.click()
        await page.wait_for_function(f"() => document.querySelectorAll('{chips}').length < {n}", timeout=timeout_ms)
    # Upload only once the page shows it has no file: a file chosen while the removal's rerun is on
    # its way can be dropped by it (seen in this bench's runs).
    await page.locator('[data-testid="stMain"]').get_by_text(re.compile(r"^No (song|picture) yet")).wait_for(
        state="visible", timeout=timeout_ms)
    await wait_idle(page, timeout_ms)


async def run_in_a_row(args, server: LiveServer) -> dict:
    """One session per page, args.in_a_row analyses (songs and photos alternating, each different)."""
    photo = photo_input()
    rss: dict[int, float] = {}
    failures = 0
    async with people(args.clients, server.url, args.timeout * 1000) as new_person:
        persons = {task: new_person(task) for task in ("song", "face")}
        for person in persons.values():
            await person.open()
        started = time.perf_counter()
        for i in range(1, args.in_a_row + 1):
            task = "song" if i % 2 else "face"
            data, mime, name = ((varied_song(i), "audio/wav", f"song_{i}.wav") if task == "song"
                                else (varied_photo(photo, i), "image/png", f"photo_{i}.png"))
            outcome = await persons[task].upload(name, data, mime, replace=not args.keep_files)
            failures += outcome.seconds is None
            rss[i] = rss_mib(server.pid)
            if outcome.seconds is None or (not args.summary and (i in (1, 20, args.in_a_row) or i % 10 == 0)):
                print(f"  {i:4d} analyses: server RSS {rss[i]:7.1f} MiB  ({time.perf_counter() - started:.0f} s)"
                      + ("" if outcome.seconds is not None else f"  FAILED: {outcome}"), flush=True)
        stored = {"before_close": server.stored_bytes()}
        for person in persons.values():
            await person.close()
    after_close = None
    if args.wait_after_close:  # a closed session, and its uploads, go after server.disconnectedSessionTTL
        await asyncio.sleep(args.wait_after_close)
        after_close = rss_mib(server.pid)
        stored["after_close"] = server.stored_bytes()
        print(f"  {args.wait_after_close:.0f} s after the sessions closed: server RSS {after_close:7.1f} MiB", flush=True)
    print("  people's files the server holds (its own count, MB): " + "; ".join(
        f"{when.replace('_', ' ')}: uploads {b['uploads'] / 1e6:.1f}, media {b['media'] / 1e6:.1f}"
        for when, b in stored.items()), flush=True)
    after_20, after_all = rss[min(20, args.in_a_row)], rss[args.in_a_row]
    growth = 100 * (after_all - after_20) / after_20
    print(f"clients: {args.clients}; {'uploads kept' if args.keep_files else 'each upload replaces the one before'}: "
          f"server RSS after 20: {after_20:.1f} MiB; after {args.in_a_row}: {after_all:.1f} MiB; growth "
          f"{growth:+.1f}%" + ("" if args.keep_files else f" (goal <= 10%: {'met' if growth <= 10 else 'NOT met'})")
          + f"; failed analyses: {failures}")
    return {"clients": args.clients, "keep_files": args.keep_files, "rss_after_20_mib": after_20,
            "rss_after_all_mib": after_all, "growth_percent": growth, "analyses": args.in_a_row,
            "failures": failures, "rss_by_analysis": rss, "wait_after_close_s": args.wait_after_close,
            "rss_after_close_mib": after_close, "stored_bytes": stored}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,4,8", help="comma-separated N (default 1,4,8)")
    parser.add_argument("--tasks", default="song,face", help="song, face or both (default)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of N simultaneous sessions at the largest N (smaller N: as many results)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a session waits for its result")
    parser.add_argument("--in-a-row", type=int, default=0, help="instead: one session, this many analyses")
    parser.add_argument("--clients", choices=("ws", "browser", "probe"), default="ws",
                        help="ws: websocket clients that draw nothing (default); browser: a Chromium context "
                             "each; probe: one person in Chromium, the others websocket clients")
    parser.add_argument("--keep-files", action="store_true",
                        help="in a row: leave every song in the song page's multi-file uploader (default: remove "
                             "the last one first; the photo uploader takes one file and always replaces)")
    parser.add_argument("--summary", action="store_true", help="only the results table (and any failure)")
    parser.add_argument("--wait-after-close", type=float, default=0,
                        help="in a row: then close the sessions, wait this many seconds and read RSS again")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="write the report here (default: bench/results/load.json, or load_in_a_row.json "
                             "with --in-a-row)")
    args = parser.parse_args()
    json_path = args.json or RESULTS_DIR / ("load_in_a_row.json" if args.in_a_row else "load.json")
    args.sessions = [int(n) for n in args.sessions.split(",")]
    args.tasks = args.tasks.split(",")
    if args.clients != "ws" and not CHROMIUM.exists():
        print(f"error: {CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    with Report("load", json_path) as report:
        print(f"machine: {os.cpu_count()} CPUs, load average {load_average():.1f} at start; clients: {args.clients}",
              flush=True)
        with tempfile.TemporaryDirectory(prefix="moodlens-load-") as log_dir:
            server = LiveServer(Path(log_dir) / "streamlit.log")
            sampler = RssSampler(server.pid)
            if not args.summary:
                print(f"server pid {server.pid} on {server.url}, RSS {rss_mib(server.pid):.0f} MiB", flush=True)
            try:
                if args.in_a_row:
                    report.figures = asyncio.run(run_in_a_row(args, server))
                else:
                    rounds = asyncio.run(run_load(args, server, sampler))
                    verdicts = report_rounds(rounds, server, args.clients)
                    report.figures = {
                        "clients": args.clients, "verdicts": verdicts, "server_vmhwm_mib": hwm_mib(server.pid),
                        "rounds": [asdict(r) | {"figures": [round_figures(r, c) for c in clients_of(r)]}
                                   for r in rounds]}
            finally:
                sampler.stop()
                print(f"load average at end {load_average():.1f}", flush=True)
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
