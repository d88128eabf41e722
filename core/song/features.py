"""What the song model hears: musicnn embeddings of a song's 3-s patches, in 30-s windows.

Bytes -> 16 kHz mono (`audio.load_mono`) -> musicnn's log-mel (`musicnn.log_mel`) -> 187-frame
patches that do not overlap, from the song's start -> each patch's 200-d penultimate layer and 50 tag
probabilities (`musicnn.Musicnn.embeddings`, (p, 250)) -> windows of WINDOW_PATCHES consecutive
patches (30 s), each one input of the song CRNN. Training (core.train) computes its inputs from the
data set's audio with these same functions.

A song longer than MAX_PATCHES patches gets MAX_PATCHES patches spread evenly over it, which bounds
musicnn's work a song (its cost a patch: docs/song_model.md): every patch of a song of up to
MAX_PATCHES x 2.99 s, fewer past that.
"""

from __future__ import annotations

import numpy as np

from core.song import decode as audio
from core.song import musicnn

WINDOW_PATCHES = 10      # 29.9 s, the data set's clips
WINDOW_HOP_PATCHES = 3   # windows of a long song start at most 9 s apart
MAX_PATCHES = 64


def song_patches(data: bytes, offset_frames: int = 0, max_patches: int = MAX_PATCHES
                 ) -> tuple[float, np.ndarray, np.ndarray]:
    """Bytes -> (duration_s, start_s (p,), patches (p, 187, 96) float32 log-mel).

    offset_frames: the first patch's first frame (0 in the app; training adds a shifted grid).
    Raises InputError for a file that is not a usable song (core.song.decode's checks and messages).
    """
    song = audio.load_mono(data, musicnn.SAMPLE_RATE_HZ)
    mel = musicnn.log_mel(song.samples)
    if offset_frames and len(mel) - offset_frames >= musicnn.PATCH_FRAMES:
        starts = offset_frames + musicnn.patch_starts(len(mel) - offset_frames, max_patches)
    else:
        starts = musicnn.patch_starts(len(mel), max_patches)
    return song.duration_s, starts * musicnn.HOP_LENGTH / musicnn.SAMPLE_RATE_HZ, musicnn.patches(mel, starts)


def window_starts(n_patches: int) -> np.ndarray:
    """First patch of each window of a song of n_patches patches -> (k,) int: one window when the
    song has WINDOW_PATCHES or fewer, else windows at most WINDOW_HOP_PATCHES apart, the first at
    the first patch and the last ending at the last."""
    last = max(n_patches - WINDOW_PATCHES, 0)
    return np.linspace(0, last, int(np.ceil(last / WINDOW_HOP_PATCHES)) + 1).round().astype(int)


def windows(embeddings: np.ndarray, patch_starts_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p, 250) patch embeddings and their (p,) start times -> (start_s (k,), (k, w, 250) float32)
    with w = min(p, WINDOW_PATCHES)."""
    width = min(len(embeddings), WINDOW_PATCHES)
    first = window_starts(len(embeddings))
    return patch_starts_s[first], embeddings[first[:, None] + np.arange(width)].astype(np.float32)


def song_features(data: bytes, model: musicnn.LiteRTMusicnn | musicnn.Musicnn | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Bytes -> (duration_s, start_s (k,), windows (k, w, 250) float32): what the song models need
    of a song. Raises InputError for a file that is not a usable song.

    The app computes the same in two steps (core.workers): `song_patches` in a worker process (the
    decoding and the log-mel, NumPy under the GIL), then `embedded_windows` where the models run
    (musicnn in LiteRT, which releases the GIL while it computes)."""
    return embedded_windows(*song_patches(data), model=model)


def embedded_windows(duration_s: float, starts_s: np.ndarray, patches_: np.ndarray,
                     model: musicnn.LiteRTMusicnn | musicnn.Musicnn | None = None
                     ) -> tuple[float, np.ndarray, np.ndarray]:
    """`song_patches`'s result -> `song_features`'s: musicnn on every patch, then the windows."""
    embeddings = (model or musicnn.default_litert_musicnn()).embeddings(patches_)
    return (duration_s, *windows(embeddings, starts_s))


def warm_up() -> None:
    """musicnn (LiteRT) loaded and run once in this process, before a person's first song."""
    mel = musicnn.log_mel(np.zeros(musicnn.SAMPLE_RATE_HZ * 3, np.float32))
    musicnn.default_litert_musicnn().embeddings(musicnn.patches(mel, musicnn.patch_starts(len(mel))))


def song_tags(data_windows: np.ndarray, top: int = 5) -> list[dict]:
    """A song's top musicnn tags from its windows (k, w, 250): the mean probability of each tag over
    its patches (each patch counted once), highest first -> [{"tag", "probability"}]."""
    return top_tags(_distinct_patches(data_windows)[:, musicnn.PENULTIMATE_UNITS:].mean(axis=0), top)


def top_tags(probabilities: np.ndarray, top: int = 5) -> list[dict]:
    """(50,) tag probabilities -> the `top` highest as [{"tag", "probability"}]."""
    order = np.argsort(-probabilities)[:top]
    return [{"tag": musicnn.MSD_TAGS[i], "probability": float(probabilities[i])} for i in order]


def _distinct_patches(data_windows: np.ndarray) -> np.ndarray:
    """Overlapping windows' patches, each once: (k, w, d) -> (p, d)."""
    flat = data_windows.reshape(-1, data_windows.shape[-1])
    _, first = np.unique(flat, axis=0, return_index=True)
    return flat[np.sort(first)]


# --- the data set's songs ----------------------------------------------------------------------

SONGS_FOLDER = "songs"
# The training grids: the app's (from frame 0) and one shifted by half a patch, for augmentation.
TRAINING_OFFSETS_FRAMES = (0, musicnn.PATCH_FRAMES // 2)


def song_file(data_dir, song_id: str):
    """The audio of one song of a music folder: songs/<song_id>.<any extension the app reads>."""
    from pathlib import Path

    found = sorted((Path(data_dir) / SONGS_FOLDER).glob(f"{song_id}.*"))
    found = [p for p in found if p.suffix.lower().lstrip(".") in (*audio.SUPPORTED_FORMATS, "opus")]
    if not found:
        raise FileNotFoundError(f"no audio for song {song_id} in {Path(data_dir) / SONGS_FOLDER}")
    return found[0]


def dataset_embeddings(data_dir, song_ids: np.ndarray, cache_dir=None,
                       offsets_frames: tuple[int, ...] = TRAINING_OFFSETS_FRAMES, log=print) -> dict:
    """Every song's patch embeddings, computed from its audio as the app computes them ->
    {"embeddings": (offsets, n, WINDOW_PATCHES, 250) float32 (zero past a song's patches),
     "n_patches": (offsets, n) int, "offsets_frames", "key"}.

    With `cache_dir`, kept there as an .npz named by a key over the songs' files (path, size,
    modification time), the musicnn model file and these settings; computed again when absent.
    Never inside the repository: it is computed from the data set.
    """
    import hashlib
    import json
    import time
    from pathlib import Path

    from core import cards

    files = [song_file(data_dir, s) for s in song_ids]
    key_source = {"files": [[p.name, p.stat().st_size, int(p.stat().st_mtime)] for p in files],
                  "musicnn": cards.sha256_file(musicnn.MODEL_PATH), "offsets": list(offsets_frames),
                  "window": WINDOW_PATCHES, "version": 1}
    key = hashlib.sha256(json.dumps(key_source).encode()).hexdigest()[:16]
    cached = Path(cache_dir) / f"song_embeddings_{key}.npz" if cache_dir else None
    if cached and cached.exists():
        with np.load(cached) as npz:
            return {"embeddings": npz["embeddings"], "n_patches": npz["n_patches"],
                    "offsets_frames": tuple(offsets_frames), "key": key}
    model = musicnn.default_musicnn()
    embeddings = np.zeros((len(offsets_frames), len(files), WINDOW_PATCHES, musicnn.EMBEDDING_DIM), np.float32)
    n_patches = np.zeros((len(offsets_frames), len(files)), int)
    started = time.time()
    for i, path in enumerate(files):
        data = path.read_bytes()
        for j, offset in enumerate(offsets_frames):
            _, _, x = song_patches(data, offset, max_patches=WINDOW_PATCHES)
            embeddings[j, i, :len(x)] = model.embeddings(x)
            n_patches[j, i] = len(x)
        if log and (i + 1) % 50 == 0:
            log(f"musicnn embeddings: {i + 1}/{len(files)} songs, {time.time() - started:.0f} s")
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, embeddings=embeddings, n_patches=n_patches)
    return {"embeddings": embeddings, "n_patches": n_patches, "offsets_frames": tuple(offsets_frames), "key": key}


def tags_text(tags: list[dict]) -> str:
    """Top tags as one line of text: 'rock 0.62 · pop 0.41 · …'."""
    return " · ".join(f"{t['tag']} {t['probability']:.2f}" for t in tags)
