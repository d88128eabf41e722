"""The library scan and the Library page at scale.

    python -m bench.library_scan [--songs 764] [--no-ray] [--rows 100000] [--json PATH]

1. Scans a copy of the first --songs of the shared songs (../shared/data/music/songs) with
   `python -m core.library scan`, the local path then a local Ray cluster (`--ray local`), each a
   command of its own, in one run: songs a second from the first committed batch on (the models'
   loading and Ray's start left out; also given whole) and the peak RSS of the command's whole
   process tree (its decoding workers, Ray's helpers and actors), sampled every 0.2 s from /proc.
2. Runs the local scan again with nothing new: the rerun's time.
3. Writes a made-up library of --rows songs (core.library.synthetic) as one Parquet file and times
   what the Library page does to show it: load (core.library.explore.load_library), build the
   figure (core.library.plots.library_map) and serialise it as Streamlit does (plotly JSON); then
   the page itself under Streamlit's AppTest, the server given that file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import MUSIC_DIR, ROOT, Report, add_report_option, load_note


def tree_rss_mib(pid: int) -> tuple[float, float]:
    """RSS of a process and all its descendants, and of the process alone, MiB (from /proc)."""
    total, own, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            total += rss
            own = rss if p == pid else own
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024, own / 1024


def run_scan(args: list[str]) -> dict:
    """`python -m core.library scan *args --quiet` -> its JSON summary, wall time and peak tree RSS."""
    command = [sys.executable, "-m", "core.library", "scan", *args, "--quiet"]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0, 0.0]

    def sample():
        while process.poll() is None:
            tree, own = tree_rss_mib(process.pid)
            peak[0], peak[1] = max(peak[0], tree), max(peak[1], own)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    sampler.join()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    return {**summary, "wall_s": round(time.monotonic() - started, 2), "peak_tree_rss_mib": round(peak[0]),
            "peak_command_rss_mib": round(peak[1])}


def page_times(rows: int, folder: Path) -> dict:
    from core.library import explore
    from core.library.plots import library_map
    from core.library.synthetic import synthetic_songs
    import pyarrow.parquet as pq

    path = folder / f"synthetic_{rows}.parquet"
    pq.write_table(synthetic_songs(rows, seed=1), path)
    started = time.perf_counter()
    library = explore.load_library(str(path))
    loaded = time.perf_counter()
    figure = library_map(library.songs, np.arange(len(library.songs)))
    built = time.perf_counter()
    spec = figure.to_json()
    serialised = time.perf_counter()
    like = explore.songs_like(library, 0)  # reads the embeddings: the first "songs like this"
    liked = time.perf_counter()
    explore.songs_like(library, 1)
    again = time.perf_counter()

    from streamlit.testing.v1 import AppTest

    os.environ["MOODLENS_LIBRARY"] = str(path)
    app = AppTest.from_file(str(ROOT / "pages" / "library.py"), default_timeout=120)
    page_started = time.perf_counter()
    app.run()
    page_s = time.perf_counter() - page_started
    assert not app.exception, app.exception
    return {"rows": rows, "file_mib": round(path.stat().st_size / 2 ** 20, 1),
            "load_s": round(loaded - started, 3), "figure_s": round(built - loaded, 3),
            "serialise_s": round(serialised - built, 3), "load_and_draw_s": round(serialised - started, 3),
            "figure_json_mib": round(len(spec) / 2 ** 20, 1), "first_songs_like_s": round(liked - serialised, 3),
            "next_songs_like_s": round(again - liked, 4), "page_first_run_s": round(page_s, 3),
            "neighbours_found": len(like)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.library_scan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=764, help="how many of the shared songs to scan")
    parser.add_argument("--no-ray", action="store_true", help="the local path only")
    parser.add_argument("--rows", type=int, default=100_000, help="songs in the made-up library for the page")
    add_report_option(parser, "library_scan")
    args = parser.parse_args(argv)
    with Report("library_scan", args.json, argv) as report, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        songs = sorted((MUSIC_DIR / "songs").iterdir())[:args.songs]
        music = tmp / "music"
        music.mkdir()
        for i, song in enumerate(songs):  # 20 folders, as a library has
            (music / f"{i % 20:02d}").mkdir(exist_ok=True)
            shutil.copy(song, music / f"{i % 20:02d}" / song.name)
        print(f"{len(songs)} songs, {sum(s.stat().st_size for s in songs) / 2 ** 20:.0f} MiB; {load_note()}")
        figures = report.figures
        figures["local"] = run_scan([str(music), "--out", str(tmp / "local.parquet")])
        print("local:", json.dumps(figures["local"]))
        figures["rerun"] = run_scan([str(music), "--out", str(tmp / "local.parquet")])
        print("rerun, nothing new:", json.dumps({k: figures["rerun"][k] for k in ("wall_s", "pending", "peak_tree_rss_mib")}))
        if not args.no_ray:
            figures["ray"] = run_scan([str(music), "--out", str(tmp / "ray.parquet"), "--ray", "local"])
            print("ray (local cluster):", json.dumps(figures["ray"]))
            local, ray = figures["local"]["steady_songs_per_s"], figures["ray"]["steady_songs_per_s"]
            if local and ray:
                figures["local_over_ray_steady"] = round(local / ray, 3)
        print(f"after the scans: {load_note()}")
        figures["page"] = page_times(args.rows, tmp)
        print("page:", json.dumps(figures["page"]))
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
