"""Songs from bytes: decoding in memory and the log-mel features of the training data.

The feature recipe is exactly the one in ../shared/data/music/SOURCE.md (librosa 0.11):
22,050 Hz mono (channel mean, soxr_hq resampling), 30-s windows zero-padded at the end,
mel power spectrogram (n_fft 2048, hop 1024, 128 bands), power_to_db(ref=np.max): (646, 128) dB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import librosa
import numpy as np
import soundfile as sf

from core.errors import InputError

SAMPLE_RATE_HZ = 22050
N_FFT = 2048
HOP_LENGTH = 1024
N_MELS = 128
WINDOW_S = 30.0
WINDOW_SAMPLES = int(round(WINDOW_S * SAMPLE_RATE_HZ))  # 661,500
WINDOW_FRAMES = 1 + WINDOW_SAMPLES // HOP_LENGTH        # 646
# Windows of a long song start at most 215 frames (9.98 s) apart, on whole frames, so each
# window's frames are frames of the whole song's spectrogram.
WINDOW_HOP_FRAMES = 215

SUPPORTED_FORMATS = ("mp3", "wav", "flac", "ogg")
MIN_DURATION_S = 1.0
MAX_DURATION_S = 15 * 60.0
MAX_CHANNELS = 32
# Peak below this (about -80 dBFS) is silence: the recipe's per-clip 0 dB reference would
# turn it into a loud-looking spectrogram.
SILENCE_PEAK = 1e-4
# Float files can hold any value; a peak this far over full scale (+80 dB) is not sound. Far above
# it (about 1e16) the spectrogram's power overflows float32 and the features become NaN.
MAX_PEAK = 1e4


@dataclass
class Song:
    samples: np.ndarray      # (n,) float32, mono, SAMPLE_RATE_HZ
    duration_s: float
    original_sample_rate_hz: int
    original_channels: int
    format: str              # container as libsndfile reads it: "MP3", "WAV", ...


def _open_audio(data: bytes) -> sf.SoundFile:
    """An open libsndfile reader over the bytes, its header checked (channels, length).

    Raises InputError with a message for a person when the bytes are not usable audio.
    """
    if not data:
        raise InputError("The file is empty. Upload a song as mp3, wav, flac or ogg.")
    try:
        f = sf.SoundFile(io.BytesIO(data))
    except _READ_ERRORS as e:
        raise _unreadable(e) from None
    try:
        if f.samplerate <= 0 or f.channels <= 0:
            raise InputError("The file has no audio stream. Upload an mp3, wav, flac or ogg file.")
        if f.channels > MAX_CHANNELS:
            raise InputError(f"The file has {f.channels} channels; at most {MAX_CHANNELS} are supported.")
        if f.frames > 0 and f.frames / f.samplerate > MAX_DURATION_S + 1:
            raise _too_long(f.frames / f.samplerate)
    except BaseException:
        f.close()
        raise
    return f


_READ_ERRORS = (sf.SoundFileError, RuntimeError, ValueError, MemoryError)


def _too_long(duration_s: float) -> InputError:
    minutes, seconds = divmod(round(duration_s), 60)
    return InputError(f"The song is {minutes} min {seconds} s long; the limit is "
                      f"{MAX_DURATION_S / 60:.0f} minutes. Upload a shorter song or an excerpt.")


def _unreadable(e: BaseException) -> InputError:
    return InputError(
        "This file could not be read as audio (it may be damaged, cut short or not a sound file: "
        f"{str(e).split(':')[-1].strip() or type(e).__name__}). Supported formats: "
        f"{', '.join(SUPPORTED_FORMATS)}.")


def decode_audio(data: bytes) -> tuple[np.ndarray, int, str]:
    """Decode audio bytes in memory -> ((n, channels) float32, sample rate in Hz, format name).

    Raises InputError with a message for a person when the bytes are not usable audio.
    """
    with _open_audio(data) as f:
        try:
            samples = f.read(dtype="float32", always_2d=True)
        except _READ_ERRORS as e:
            raise _unreadable(e) from None
        return samples, f.samplerate, f.format


def load_song(data: bytes) -> Song:
    """Decode bytes to the recipe's mono 22,050 Hz signal, checking length and level."""
    samples, sample_rate_hz, fmt = decode_audio(data)
    duration_s = len(samples) / sample_rate_hz
    if duration_s > MAX_DURATION_S + 1:
        raise _too_long(duration_s)
    if duration_s < MIN_DURATION_S:
        raise InputError(f"The clip is only {duration_s:.2f} s long; at least {MIN_DURATION_S:.0f} s "
                         "of music is needed to hear a mood.")
    if not np.all(np.isfinite(samples)):
        raise InputError("The file's samples contain invalid values (NaN or infinity): it is damaged.")
    # librosa.to_mono's channel mean, as one matrix-vector product: numpy's mean over a
    # 2-wide axis is ten times slower, and for 1 or 2 channels the weights 1 and 0.5 are exact.
    mono = samples @ np.full(samples.shape[1], 1.0 / samples.shape[1], dtype=np.float32)
    peak = float(np.max(np.abs(mono)))
    if peak < SILENCE_PEAK:
        raise InputError("The song is silent (no sound above -80 dBFS), so it has no mood to read.")
    if peak > MAX_PEAK:
        raise InputError(f"The file's samples go far beyond full scale (peak {peak:.3g}; sound lies "
                         "within -1..1): it is damaged or not audio. Export it again as 16- or 24-bit audio.")
    if sample_rate_hz != SAMPLE_RATE_HZ:
        mono = librosa.resample(mono, orig_sr=sample_rate_hz, target_sr=SAMPLE_RATE_HZ, res_type="soxr_hq")
    return Song(np.ascontiguousarray(mono, dtype=np.float32), duration_s, sample_rate_hz,
                samples.shape[1], fmt)


def mel_power(y: np.ndarray) -> np.ndarray:
    """(n,) float32 at 22,050 Hz -> mel power spectrogram (128, 1 + n // 1024)."""
    return librosa.feature.melspectrogram(y=y, sr=SAMPLE_RATE_HZ, n_fft=N_FFT,
                                          hop_length=HOP_LENGTH, n_mels=N_MELS)


def to_db(power: np.ndarray) -> np.ndarray:
    """Mel power (128, frames) -> (frames, 128) float32 dB, the window's max at 0 dB, floor -80."""
    return librosa.power_to_db(power, ref=np.max).T.astype(np.float32)


def logmel(y: np.ndarray) -> np.ndarray:
    """The recipe for one clip: (n,) float32 at 22,050 Hz -> (646, 128) float32 dB.

    The clip is zero-padded at the end, or cut, to exactly 30 s.
    """
    y = np.pad(y, (0, max(0, WINDOW_SAMPLES - len(y))))[:WINDOW_SAMPLES]
    return to_db(mel_power(y))


def song_windows(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping 30-s windows of a song -> (start_s (k,), features (k, 646, 128) dB).

    A song of 30 s or less (or at most 5 s more) is one window, exactly the recipe. A longer one gets windows evenly
    spaced at most WINDOW_HOP_FRAMES frames apart over its whole spectrogram (computed once), the
    first at 0 s and the last ending at the song's end; each window is scaled to its own max as in
    the recipe.
    """
    if len(y) <= WINDOW_SAMPLES + WINDOW_HOP_FRAMES * HOP_LENGTH // 2:
        return np.zeros(1), logmel(y)[None]  # up to 5 s over 30 s: the first 30 s, as in the recipe
    power = mel_power(y)
    last = power.shape[1] - WINDOW_FRAMES
    starts = np.linspace(0, last, int(np.ceil(last / WINDOW_HOP_FRAMES)) + 1).round().astype(int)
    features = np.stack([to_db(power[:, s:s + WINDOW_FRAMES]) for s in starts])
    return np.array(starts) * HOP_LENGTH / SAMPLE_RATE_HZ, features
