"""The decode budget, measured: time and peak RSS of core.song.decode.load_mono on a FLAC bomb
(8 channels at 192 kHz declared for 14 min: 1.29 G samples in a small file) and on a real-sized
14-min 96-kHz stereo FLAC, each in a fresh process. Writes JSON to stdout.

    python -m bench.song_decode_budget [--bomb-only]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = {
    "flac bomb: 8 ch x 192 kHz x 14 min": "flac_bomb(8, 192_000, 14.0)",
    "flac bomb, header declaring stereo 48 kHz": "flac_bomb(8, 192_000, 14.0, declared=(2, 48_000))",
    "14-min 96-kHz stereo flac": "long_flac(14.0, 96_000)",
}


def measure(name: str) -> dict:
    """One case in this process: the file made, then decoded as the app decodes a song."""
    from core.errors import InputError
    from core.song import decode, musicnn
    from tests.song import budget_files  # noqa: F401 - the case's expression uses it

    data = eval(f"budget_files.{CASES[name]}")  # noqa: S307 - the expressions above
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start, cpu = time.perf_counter(), time.process_time()
    try:
        song = decode.load_mono(data, musicnn.SAMPLE_RATE_HZ)
        answer = f"decoded: {song.duration_s:.1f} s, {song.original_channels} ch at {song.original_sample_rate_hz} Hz"
    except InputError as e:
        answer = f"refused: {e}"
    return {"case": name, "file_mb": round(len(data) / 1e6, 2), "answer": answer,
            "seconds": round(time.perf_counter() - start, 3), "cpu_s": round(time.process_time() - cpu, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_rss_before_decoding_mb": round(rss_before_mb, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.song_decode_budget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bomb-only", action="store_true", help="only the first case")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one case, in the process a run starts
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(measure(args.case)))
        return 0
    results = []
    for name in list(CASES)[:1] if args.bomb_only else CASES:
        done = subprocess.run([sys.executable, "-m", "bench.song_decode_budget", "--case", name],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout))
    print(json.dumps({"bench": "song_decode_budget", "cases": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
