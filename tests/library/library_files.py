"""Libraries the tests make: a music folder of real songs and bad files, and a made-up scanned
library beside a few real audio files."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.library import store
from core.library.synthetic import synthetic_songs
from tests.conftest import MUSIC_DIR, music_like, require_shared, wav_bytes

SONGS = MUSIC_DIR / "songs"


def music_folder(folder: Path, songs: int = 6) -> dict:
    """`songs` real songs (a third in a nested folder) and every kind of bad file -> what is where."""
    require_shared(SONGS)
    real = sorted(SONGS.iterdir())[:songs]
    (folder / "rock" / "live").mkdir(parents=True)
    placed = []
    for i, path in enumerate(real):
        target = folder / "rock" / ("live" if i % 3 == 2 else "") / path.name
        shutil.copy(path, target)
        placed.append(target.relative_to(folder).as_posix())
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.mp3").write_text("not a song, a text file named .mp3\n")
    (folder / "damaged.opus").write_bytes(b"OggS" + bytes(range(256)) * 8)  # an Ogg header, then junk
    with open(folder / "huge.wav", "wb") as f:  # sparse: no disk used, never read
        f.truncate(201 * 1024 * 1024)
    (folder / "readme.txt").write_text("not a format the app reads: not listed at all\n")
    return {"songs": sorted(placed), "failures": sorted(["empty.wav", "notes.mp3", "damaged.opus", "huge.wav"])}


def made_up_library(tmp: Path, n: int = 60) -> tuple[Path, Path, Path]:
    """A scanned library of `n` made-up songs whose first two rows are real files in its music
    folder, and two rows that point outside it -> (dataset, music folder, a file outside it)."""
    music, outside = tmp / "music", tmp / "private" / "secret.wav"
    (music / "a").mkdir(parents=True)
    outside.parent.mkdir()
    for name, seed in (("a/one.wav", 1), ("a/two.wav", 2)):
        (music / name).write_bytes(wav_bytes(music_like(2.0, seed=seed), 22050))
    outside.write_bytes(wav_bytes(music_like(2.0, seed=3), 22050))
    (music / "a" / "link.wav").symlink_to(outside)
    paths = ["a/one.wav", "a/two.wav", "../private/secret.wav", str(outside), "a/link.wav"]
    paths += [f"folder {i % 3}/song {i:03d}.mp3" for i in range(n - len(paths))]
    dataset = tmp / "library.parquet"
    library = store.LibraryStore(str(dataset))
    library.create(str(music), "synthetic")
    rows = synthetic_songs(n, seed=7, paths=paths).to_pylist()
    library.commit(rows[: n // 2], [])
    library.commit(rows[n // 2:], [])
    return dataset, music, outside
