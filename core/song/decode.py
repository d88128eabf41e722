"""Songs from bytes: decoding in memory and the log-mel features of the training data.

The feature recipe is exactly the one in ../shared/data/music/SOURCE.md (librosa 0.11):
22,050 Hz mono (channel mean, soxr_hq resampling), 30-s windows zero-padded at the end,
mel power spectrogram (n_fft 2048, hop 1024, 128 bands), power_to_db(ref=np.max): (646, 128) dB.
`load_song` and `song_windows` compute it plainly; `load_song_windows`, what the app calls, gives
the same from bytes with the decoding overlapped with the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import itertools
import queue
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import librosa
import numpy as np
import soundfile as sf
import soxr
from threadpoolctl import ThreadpoolController

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
# Up to 5 s over 30 s a song is one window, its first 30 s, as in the recipe.
ONE_WINDOW_MAX_SAMPLES = WINDOW_SAMPLES + WINDOW_HOP_FRAMES * HOP_LENGTH // 2

# libsndfile reads the first five; FFmpeg (PyAV's wheels) the containers of phones, music stores and
# browsers' recordings (_FfmpegAudio).
SUPPORTED_FORMATS = ("mp3", "wav", "flac", "ogg", "opus", "m4a", "aac", "webm")
MIN_DURATION_S = 1.0
MIN_RECORDING_S = 5.0   # a recording from the microphone: a few seconds of the music at least
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


def _open_audio(data: bytes) -> sf.SoundFile | _FfmpegAudio:
    """An open libsndfile reader over the bytes (FFmpeg's for m4a, AAC and WebM), its header checked
    (channels).

    Its `frames` is the header's word, which can be wrong (see _LengthUnknown, _wav_data_to_the_end,
    _flac_length_untold):
    the length that counts is the one decoded, and the reading stops at the limit (_decoded_here).
    Raises InputError with a message for a person when the bytes are not usable audio.
    """
    if not data:
        raise InputError(f"The file is empty. Upload a song as {', '.join(SUPPORTED_FORMATS)}.")
    if _ffmpeg_container(data):
        return _FfmpegAudio(data)
    data = _flac_length_untold(_wav_data_to_the_end(data))
    try:
        f = sf.SoundFile(io.BytesIO(data))
        if f.format == "MP3" and not _mp3_length_tag(data):
            f.close()
            f = sf.SoundFile(_LengthUnknown(data))
    except _READ_ERRORS:
        raise _unreadable() from None
    try:
        if f.samplerate <= 0 or f.channels <= 0:
            raise _no_audio_stream()
        if f.channels > MAX_CHANNELS:
            raise InputError(f"The file has {f.channels} channels; at most {MAX_CHANNELS} are supported.")
    except BaseException:
        f.close()
        raise
    return f


def recording_too_short(duration_s: float) -> InputError | None:
    """The message for a microphone recording too short to be read as music, or None."""
    if duration_s >= MIN_RECORDING_S:
        return None
    return InputError(f"The recording is only {duration_s:.1f} s long; record at least "
                      f"{MIN_RECORDING_S:.0f} s of the music, close to the speaker.")


def _no_audio_stream() -> InputError:
    return InputError(f"The file has no audio stream. Upload a song as {', '.join(SUPPORTED_FORMATS)}.")


def _ffmpeg_container(data: bytes) -> bool:
    """Whether the bytes are a container libsndfile cannot read and FFmpeg can: MP4/M4A (an `ftyp`
    box), an ADTS AAC stream (frame sync with MPEG layer bits 00, where an mp3 has 01 to 11), or
    Matroska/WebM (its EBML magic)."""
    return (data[4:8] == b"ftyp" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0)
            or data[:4] == b"\x1aE\xdf\xa3")


class _FfmpegAudio:
    """An m4a, AAC or WebM song decoded by FFmpeg (PyAV) from the bytes in memory, read as
    `_decoded_here` reads a SoundFile: `samplerate`, `channels`, `format`, `frames` (-1: unknown, the
    decoded length counts) and `read_block`. FFmpeg writes no file; a decoder that hangs is stopped
    by the worker's time limit (core.workers)."""

    def __init__(self, data: bytes):
        import av

        self._av = av
        try:
            self._container = av.open(io.BytesIO(data), mode="r")
        except (av.FFmpegError, ValueError, UnicodeDecodeError):
            raise _unreadable() from None
        try:
            audio_streams = [s for s in self._container.streams if s.type == "audio"]
            if not audio_streams or not audio_streams[0].codec_context.sample_rate:
                raise _no_audio_stream()
            stream = audio_streams[0]
            self.samplerate = int(stream.codec_context.sample_rate)
            self.channels = int(stream.codec_context.channels or 0)
            if self.channels <= 0:
                raise _no_audio_stream()
            if self.channels > MAX_CHANNELS:
                raise InputError(f"The file has {self.channels} channels; at most {MAX_CHANNELS} are supported.")
            self.format = self._container.format.name.split(",")[0].upper()
            self.frames = -1
            # Packed float32 at the stream's own rate and layout: only the sample format changes.
            self._resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout,
                                                rate=self.samplerate)
            self._frames = self._container.decode(stream)
            self._pending = np.zeros((0, self.channels), np.float32)
            self._ended, self._decoded = False, 0
        except BaseException:
            self._container.close()
            raise

    def _converted(self, frame) -> np.ndarray:
        parts = [f.to_ndarray().reshape(-1, self.channels) for f in self._resampler.resample(frame)]
        return np.concatenate(parts) if parts else np.zeros((0, self.channels), np.float32)

    def read_block(self, frames: int) -> np.ndarray | None:
        """The next (up to `frames`, channels) float32 frames; None at the stream's end. A stream cut
        short ends where its last whole frame ends; a decoding error before any sound raises
        RuntimeError (one of _READ_ERRORS)."""
        parts, n = [self._pending], len(self._pending)
        while n < frames and not self._ended:
            try:
                frame = next(self._frames, None)
            except self._av.FFmpegError as e:
                if not self._decoded:
                    raise RuntimeError(str(e)) from None
                frame = None  # cut short: what was decoded is the song
            if frame is None:
                self._ended = True
                converted = self._converted(None)  # the resampler's last samples
            else:
                converted = self._converted(frame)
            parts.append(converted)
            n += len(converted)
            self._decoded += len(converted)
        block = np.concatenate(parts) if len(parts) > 1 else parts[0]
        block, self._pending = block[:frames], block[frames:]
        return np.ascontiguousarray(block, np.float32) if len(block) else None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "_FfmpegAudio":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _LengthUnknown(io.BytesIO):
    """The bytes of an mp3 without a length tag, for libsndfile, with the file's size untold (as a
    pipe's).

    libsndfile never reads past the length it reports, and for an mp3 without a Xing, Info or VBRI
    header (a VBR file from some encoders and cutters) mpg123 guesses that length from the file's
    size and its first frame's bitrate: a 60-s song whose first frames were loud was read as 10.8 s.
    Told nothing of the size, mpg123 reads the stream to its end (the samples are the same: the 20
    demo clips, bit for bit). A stream cut short then ends in a read error, not a short read: see
    _decoded_here."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END and offset == 0:  # how soundfile asks for the file's size
            return super().seek(0)
        return super().seek(offset, whence)


def _mp3_length_tag(data: bytes) -> bool:
    """Whether an mp3's first frame is a Xing, Info or VBRI header, from which mpg123 takes the
    stream's length (after an ID3v2 tag, which is skipped)."""
    start = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # ID3v2: a 10-byte header, its size in 7-bit bytes
        size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
        start = 10 + size + (10 if data[5] & 0x10 else 0)
    sync = next((i for i in range(start, min(len(data) - 1, start + 4096))
                 if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0), None)
    # The tag sits 13 to 36 bytes into the frame, after its header and side information.
    return sync is not None and any(tag in data[sync:sync + 64] for tag in (b"Xing", b"Info", b"VBRI"))


def _flac_length_untold(data: bytes) -> bytes:
    """A FLAC whose STREAMINFO gives its length in samples gets, in a copy, 0 there ('unknown'):
    libsndfile never reads past the length a header gives, and a FLAC's can be less than its frames
    hold (one that says 10 s of 40 s was read as 10 s). Told nothing, it reads the frames to their
    end. Other bytes come back as they are."""
    at = 8 + 13  # 'fLaC', a 4-byte block header, then STREAMINFO: its 36-bit count from byte 13 on
    if data[:4] != b"fLaC" or data[4] & 0x7F != 0 or len(data) < at + 5:
        return data
    if data[at] & 0x0F == 0 and data[at + 1:at + 5] == bytes(4):
        return data
    return data[:at] + bytes([data[at] & 0xF0]) + bytes(4) + data[at + 5:]


def _wav_data_to_the_end(data: bytes) -> bytes:
    """A RIFF wav whose data chunk says it is 0 bytes long (as a recorder that could not go back to
    write it leaves it, while the samples are there) gets, in a copy, the size of the bytes that
    follow; libsndfile would read it as 0 samples. Other bytes come back as they are."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if kind == b"data":
            if size != 0 or at + 8 == len(data):
                return data
            return data[:at + 4] + struct.pack("<I", len(data) - at - 8) + data[at + 8:]
        at += 8 + size + (size & 1)
    return data


_READ_ERRORS = (sf.SoundFileError, RuntimeError, ValueError, MemoryError)
MAX_FRAMES_READ_S = MAX_DURATION_S + 1  # the length check allows 1 s over the limit


def _too_long(decoded_s: float) -> InputError:
    """The message for a song found longer than the limit once decoded_s seconds were read."""
    minutes, seconds = divmod(int(decoded_s), 60)
    return InputError(f"The song is longer than the limit of {MAX_DURATION_S / 60:.0f} minutes (the reading stopped "
                      f"at {minutes} min {seconds} s). Upload a shorter song or an excerpt.")


def _unreadable() -> InputError:
    # No libsndfile detail: for bytes in memory it can be misleading ("File does not exist or is
    # not a regular file (possibly a pipe?)" for random bytes).
    return InputError("This file could not be read as audio (it may be damaged, cut short or not a sound "
                      f"file). Supported formats: {', '.join(SUPPORTED_FORMATS)}.")


def decode_audio(data: bytes) -> tuple[np.ndarray, int, str]:
    """Decode audio bytes in memory -> ((n, channels) float32, sample rate in Hz, format name).

    Raises InputError with a message for a person when the bytes are not usable audio.
    """
    with _open_audio(data) as f:
        blocks = list(_decoded_here(f))
        samples = np.concatenate(blocks) if blocks else np.zeros((0, f.channels), np.float32)
        return samples, f.samplerate, f.format


def load_song(data: bytes) -> Song:
    """Decode bytes to the recipe's mono 22,050 Hz signal, checking length and level."""
    samples, sample_rate_hz, fmt = decode_audio(data)
    duration_s = len(samples) / sample_rate_hz
    mono = to_mono(samples)
    _check_song(duration_s, float(np.max(np.abs(mono))) if len(mono) else 0.0)
    if sample_rate_hz != SAMPLE_RATE_HZ:
        mono = librosa.resample(mono, orig_sr=sample_rate_hz, target_sr=SAMPLE_RATE_HZ, res_type="soxr_hq")
    return Song(np.ascontiguousarray(mono, dtype=np.float32), duration_s, sample_rate_hz,
                samples.shape[1], fmt)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(n, channels) float32 -> (n,) float32, librosa.to_mono's channel mean.

    One matrix-vector product: numpy's mean over a 2-wide axis is ten times slower, and for 1 or 2
    channels the weights 1 and 0.5 are exact. A NaN or infinite sample gives a NaN or infinite mean.
    """
    with np.errstate(invalid="ignore"):  # inf and -inf in two channels: NaN, refused by _check_song
        return samples @ np.full(samples.shape[1], 1.0 / samples.shape[1], dtype=np.float32)


def _check_song(duration_s: float, peak: float) -> None:
    """Refuse a song too long or short, damaged, silent or far over full scale.

    peak: max |mono sample|, NaN or infinite when a sample is (so no separate pass over the samples).
    """
    if duration_s > MAX_DURATION_S + 1:
        raise _too_long(duration_s)
    if duration_s < MIN_DURATION_S:
        raise InputError(f"The clip is only {duration_s:.2f} s long; at least {MIN_DURATION_S:.0f} s "
                         "of music is needed to hear a mood.")
    if not np.isfinite(peak):
        raise InputError("The file's samples contain invalid values (NaN or infinity): it is damaged.")
    if peak < SILENCE_PEAK:
        raise InputError("The song is silent (no sound above -80 dBFS), so it has no mood to read.")
    if peak > MAX_PEAK:
        raise InputError(f"The file's samples go far beyond full scale (peak {peak:.3g}; sound lies "
                         "within -1..1): it is damaged or not audio. Export it again as 16- or 24-bit audio.")


def mel_power(y: np.ndarray) -> np.ndarray:
    """(n,) float32 at 22,050 Hz -> mel power spectrogram (128, 1 + n // 1024).

    librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=1024, n_mels=128), step
    for step, except that its filter bank is made once (librosa makes it again on every call).
    """
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH)) ** 2.0
    return np.einsum("...ft,mf->...mt", power, _mel_basis(), optimize=True)


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
    if len(y) <= ONE_WINDOW_MAX_SAMPLES:
        return np.zeros(1), logmel(y)[None]
    power = mel_power(y)
    starts = window_starts(power.shape[1])
    features = np.stack([to_db(power[:, s:s + WINDOW_FRAMES]) for s in starts])
    return starts * HOP_LENGTH / SAMPLE_RATE_HZ, features


def window_starts(n_frames: int) -> np.ndarray:
    """First frame of each window of a long song whose spectrogram has n_frames frames -> (k,) int."""
    last = n_frames - WINDOW_FRAMES
    return np.linspace(0, last, int(np.ceil(last / WINDOW_HOP_FRAMES)) + 1).round().astype(int)


# --- Bytes to windows in one pass: decoding overlapped with the features ------------------------
# `load_song_windows` decodes a song in blocks, a song longer than one window on a second thread
# (libsndfile, called through cffi, releases the GIL) while the calling thread turns the blocks
# already decoded into mono, 22,050 Hz and log-mel frames. Each step computes what `load_song` and
# `song_windows` compute, in pieces: soxr's streaming resampler gives its one-shot output, each STFT
# frame is librosa's, and the windows are cut from dB frames computed once. tests/test_audio.py
# checks that the two agree.

# Frames per decoded block: 5.9 s at 44.1 kHz, 2 MB in stereo. Smaller blocks cost more in
# hand-overs between the threads (a 3-minute song: 10% more CPU time in blocks of 0.74 s).
DECODE_BLOCK_FRAMES = 1 << 18
DECODE_AHEAD_BLOCKS = 4      # blocks decoded ahead of the features at most (bounds memory)
# Mel frames are computed in runs of 64 to 128: BLAS may sum a product of a few rows differently
# from the whole-song product (seen with under 8 here), and runs of 256 took twice as long a frame
# (their float64 spectra no longer stay in cache).
MIN_RUN_FRAMES, MAX_RUN_FRAMES = 64, 128
_PAD = N_FFT // 2            # librosa's centring: zeros before the first and after the last sample
AMIN = 1e-10                 # librosa.power_to_db's floor on power


def load_song_windows(data: bytes) -> tuple[Song, np.ndarray, np.ndarray]:
    """Bytes -> (song, start_s (k,), features (k, 646, 128) float32 dB): what `load_song` then
    `song_windows` give, with the decoding overlapped with the rest.

    A clip of up to 35 s is the recipe itself; a longer song's windows equal `song_windows`. Both
    run with one BLAS thread, as here; OpenBLAS on two threads sums the mel product in another
    order, which moves features by up to 2e-5 dB (measured on 30-s clips and 40-s to 10-min songs;
    the 20 demo clips' features are the same in float16 either way). On two threads a 30-s clip's
    mel product took twice the CPU time for the same wall time (16 ms against 8.7 ms).
    Raises InputError, as `load_song` does, for a file that is not a usable song.
    """
    with _one_blas_thread(), _open_audio(data) as f, contextlib.closing(_blocks_of(f)) as blocks:
        stream = _FeatureStream(f.samplerate, min(f.frames, int(MAX_FRAMES_READ_S * f.samplerate)))
        n_in, peak = 0, 0.0
        for block in blocks:
            mono = to_mono(block)
            n_in += len(mono)
            if len(mono):
                peak = float(np.maximum(peak, np.max(np.abs(mono))))  # NaN stays NaN
            if peak <= MAX_PEAK:  # False for NaN: a song that will be refused needs no features
                stream.push(mono)
        _check_song(n_in / f.samplerate, peak)
        y = stream.finish(n_in)
        song = Song(y, n_in / f.samplerate, f.samplerate, f.channels, f.format)
        if len(y) > ONE_WINDOW_MAX_SAMPLES:
            return song, *stream.windows()
        return song, np.zeros(1), logmel(y)[None]  # the recipe itself, as `song_windows` computes it


def song_features(data: bytes) -> tuple[float, np.ndarray, np.ndarray]:
    """Bytes -> (duration_s, start_s (k,), features (k, 646, 128) float32 dB): what the models need
    of a song, from `load_song_windows`, without the signal (so a worker process hands back only
    this). Raises InputError for a file that is not a usable song."""
    song, starts_s, features = load_song_windows(data)
    return song.duration_s, starts_s, features


_blas_lock = threading.Lock()
_blas_users = 0            # calls inside _one_blas_thread now, on any thread
_blas_before: list = []    # the thread counts to restore when the last one leaves


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """OpenBLAS on one thread while any song is analysed, process-wide; the last one out restores.

    The mel products are small and many, beside the decoding thread: on 2 cores under load,
    OpenBLAS's second thread made a 3-minute song take seconds instead of a few hundred ms.
    Set with openblas_set_num_threads_local (OpenBLAS >= 0.3.27), which every thread's calls
    obey; the older openblas_set_num_threads (what threadpoolctl sets) is not obeyed by calls from
    a thread other than the main one, where the pages run (measured with OpenBLAS 0.3.31). Both
    are process-wide, hence the count of users. Without it (another BLAS), products run as BLAS
    chooses: slower under load.
    """
    global _blas_users, _blas_before
    with _blas_lock:
        if _blas_users == 0:
            _blas_before = [set_threads(1) for set_threads in _blas_thread_setters()]
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                for set_threads, n in zip(_blas_thread_setters(), _blas_before):
                    set_threads(n)


@cache
def _blas_thread_setters() -> tuple:
    """openblas_set_num_threads_local of each OpenBLAS loaded: (n) -> the count it replaces."""
    setters = []
    for library in ThreadpoolController().select(internal_api="openblas").info():
        functions = ctypes.CDLL(library["filepath"])  # already loaded: the same library
        for name in ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_"):
            if hasattr(functions, name):
                set_threads = getattr(functions, name)
                set_threads.argtypes, set_threads.restype = [ctypes.c_int], ctypes.c_int
                setters.append(set_threads)
                break
    return tuple(setters)


def _blocks_of(f: sf.SoundFile) -> Iterator[np.ndarray]:
    """The blocks of an open file: decoded ahead on a second thread for a song long enough to be
    cut in windows, whose frames are computed while it decodes; on this thread for a clip, whose
    features wait for its last sample anyway. For the 20 demo clips a second thread gave the same
    wall time and cost 15% more CPU time (39 ms against 34 ms a clip, in hand-overs)."""
    if _resampled_length(max(f.frames, 0), f.samplerate) > ONE_WINDOW_MAX_SAMPLES:
        return _decoded_ahead(f)
    return _decoded_here(f)


def _decoded_here(f: sf.SoundFile) -> Iterator[np.ndarray]:
    """The blocks of an open file, decoded on this thread to the stream's end, whatever its header
    says; read errors come out as InputError, and a song that decodes past the length limit is
    refused as soon as it does (the rest is not decoded)."""
    limit, n = int(MAX_FRAMES_READ_S * f.samplerate), 0
    while True:
        try:
            block = _read_block(f, DECODE_BLOCK_FRAMES)
        except _READ_ERRORS:
            if n and f.format == "MP3":  # the end of an mp3 cut short, read as _LengthUnknown
                return
            raise _unreadable() from None
        if block is None:
            return
        n += len(block)
        if n > limit:
            raise _too_long(limit / f.samplerate)
        yield block


def _decoded_ahead(f: sf.SoundFile) -> Iterator[np.ndarray]:
    """The blocks of an open file, (n, channels) float32 each, decoded ahead on a second thread.

    Read errors come out as InputError. Close the iterator before the file: that stops the thread.
    """
    blocks: queue.Queue = queue.Queue(maxsize=DECODE_AHEAD_BLOCKS)
    stop = threading.Event()

    def decode() -> None:
        try:
            for block in _decoded_here(f):
                if stop.is_set():
                    return
                blocks.put(block)
            blocks.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread, raised there
            blocks.put(e)

    thread = threading.Thread(target=decode, name="decode-song", daemon=True)
    thread.start()
    try:
        while (block := blocks.get()) is not None:
            if isinstance(block, BaseException):
                raise block
            yield block
    finally:
        stop.set()
        while thread.is_alive():  # a thread waiting on a full queue needs room to see the stop
            with contextlib.suppress(queue.Empty):
                blocks.get(timeout=0.01)


def _read_block(f: sf.SoundFile, frames: int) -> np.ndarray | None:
    """The next (up to `frames`, channels) float32 frames of an open file; None at its end.

    Calls libsndfile's sf_readf_float itself: SoundFile.read seeks to its own position after each
    read, and for mp3 that seek restarts the decoder, so small blocks read through it can differ
    from one whole read (seen: up to 0.004 near a block's start). Without the seek they are equal.
    """
    if isinstance(f, _FfmpegAudio):
        return f.read_block(frames)
    block = np.empty((frames, f.channels), np.float32)
    n = sf._snd.sf_readf_float(f._file, sf._ffi.cast("float *", block.ctypes.data), frames)
    error = sf._snd.sf_error(f._file)
    if error:
        raise sf.LibsndfileError(error)
    return block[:n] if n > 0 else None


class _FeatureStream:
    """Mono blocks at the song's rate in; the 22,050 Hz signal, and its log-mel frames as soon as
    their samples are there.

    Frames are computed ahead only when the header says the song is long enough to be cut in
    windows; a clip of about 30 s gets the recipe whole from `logmel`.
    """

    def __init__(self, sample_rate_hz: int, expected_frames: int):
        self.resampler = None if sample_rate_hz == SAMPLE_RATE_HZ else soxr.ResampleStream(
            sample_rate_hz, SAMPLE_RATE_HZ, 1, dtype="float32", quality="HQ")  # librosa's soxr_hq
        self.sample_rate_hz = sample_rate_hz
        expected = _resampled_length(max(expected_frames, 0), sample_rate_hz)  # header: at most 15 min
        self.padded = np.zeros(_PAD + expected + N_FFT, np.float32)  # signal after _PAD zeros
        self.end = _PAD                       # end of the signal written so far, in `padded`
        self.db = np.empty((len(self.padded) // HOP_LENGTH + 1, N_MELS), np.float32)
        self.frame_peak = np.empty(len(self.db), np.float32)  # max mel power of each frame
        self.done = 0                         # frames computed
        self.ahead = expected > ONE_WINDOW_MAX_SAMPLES

    def push(self, mono: np.ndarray) -> None:
        """Take the next (n,) float32 samples at the song's rate."""
        self._append(self.resampler.resample_chunk(mono) if self.resampler else mono)
        # Frames that end a hop short of the signal so far: its last samples may yet be cut.
        ready = (self.end - HOP_LENGTH - N_FFT) // HOP_LENGTH + 1
        if self.ahead and ready - self.done >= MIN_RUN_FRAMES:
            self._frames(self.done, ready)

    def finish(self, n_in: int) -> np.ndarray:
        """After the last block (n_in samples in all) -> the song at 22,050 Hz, (n,) float32,
        exactly `load_song`'s: the resampler's tail, then librosa.resample's fix_length."""
        if self.resampler:
            self._append(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        n = _resampled_length(n_in, self.sample_rate_hz)
        if _PAD + n < self.end:
            self.padded[_PAD + n:self.end] = 0
            if self.done and (self.done - 1) * HOP_LENGTH + N_FFT > _PAD + n:
                self.done = 0  # cut more than a hop: frames computed ahead saw cut samples
        self._append(np.zeros(max(0, _PAD + n + _PAD - self.end), np.float32))
        self.end = _PAD + n
        return self.padded[_PAD:self.end]

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """After `finish`, for a long song -> (start_s (k,), features (k, 646, 128) float32 dB),
        equal to `song_windows` of the finished signal."""
        n_frames = 1 + (self.end - _PAD) // HOP_LENGTH
        self._frames(min(self.done, max(0, n_frames - MIN_RUN_FRAMES)), n_frames)
        starts = window_starts(n_frames)
        return starts * HOP_LENGTH / SAMPLE_RATE_HZ, windows_db(self.db, self.frame_peak, starts)

    def _append(self, y: np.ndarray) -> None:
        if self.end + len(y) > len(self.padded):
            self._grow(2 * (self.end + len(y)))
        self.padded[self.end:self.end + len(y)] = y
        self.end += len(y)

    def _grow(self, n: int) -> None:
        self.padded = np.concatenate([self.padded, np.zeros(n - len(self.padded), np.float32)])
        rows = len(self.padded) // HOP_LENGTH + 1 - len(self.db)
        self.db = np.concatenate([self.db, np.empty((rows, N_MELS), np.float32)])
        self.frame_peak = np.concatenate([self.frame_peak, np.empty(rows, np.float32)])

    def _frames(self, first: int, stop: int) -> None:
        """Compute frames first..stop-1 in runs of MIN_RUN_FRAMES to MAX_RUN_FRAMES."""
        runs = -(-(stop - first) // MAX_RUN_FRAMES)
        for start, end in itertools.pairwise(np.linspace(first, stop, runs + 1).round().astype(int)):
            power = mel_frames(self.padded, start, end)
            self.frame_peak[start:end] = power.max(axis=1)
            self.db[start:end] = power_db(power)
        self.done = stop


def _resampled_length(n: int, sample_rate_hz: int) -> int:
    """Samples after librosa.resample(orig_sr=sample_rate_hz, target_sr=22,050) of n samples."""
    if sample_rate_hz == SAMPLE_RATE_HZ:
        return n
    return int(np.ceil(n * (float(SAMPLE_RATE_HZ) / sample_rate_hz)))


def mel_frames(padded: np.ndarray, first: int, stop: int) -> np.ndarray:
    """Mel power of frames first..stop-1 of a 22,050 Hz signal after N_FFT // 2 zeros ->
    (stop - first, 128) float32, row t equal to column t of `mel_power` of the whole signal.

    librosa's arithmetic step by step: float64 Hann window times float32 samples, float64 rfft
    rounded to complex64, |X|^2 in float32, then the float32 mel matrix.
    """
    samples = padded[first * HOP_LENGTH:(stop - 1) * HOP_LENGTH + N_FFT]
    frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::HOP_LENGTH]
    power = np.abs(np.fft.rfft(frames * _hann(), axis=-1).astype(np.complex64))
    np.square(power, out=power)
    return power @ _mel_basis().T


def power_db(power: np.ndarray) -> np.ndarray:
    """Power -> 10 log10(max(power, 1e-10)), the same shape in float32 dB, before any reference."""
    return 10.0 * np.log10(np.maximum(AMIN, power))


def windows_db(db: np.ndarray, frame_peak: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Windows from a song's dB frames -> (k, 646, 128) float32, each as `to_db` scales it.

    db: (n_frames, 128) float32 `power_db` of the mel power; frame_peak: (n_frames,) float32 max mel
    power of each frame; starts: (k,) first frame of each window. Each window's max is its 0 dB
    (power_to_db(ref=np.max)), and its floor 80 dB below its max.
    """
    features = db[starts[:, None] + np.arange(WINDOW_FRAMES)]
    ref = np.array([frame_peak[s:s + WINDOW_FRAMES].max() for s in starts])
    features -= power_db(ref)[:, None, None]
    return np.maximum(features, features.max(axis=(1, 2), keepdims=True) - 80.0, out=features)


@cache
def _hann() -> np.ndarray:
    """librosa.stft's window: (2048,) float64 periodic Hann."""
    return librosa.filters.get_window("hann", N_FFT, fftbins=True)


@cache
def _mel_basis() -> np.ndarray:
    """librosa.feature.melspectrogram's filters: (128, 1025) float32, Slaney."""
    return librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=N_FFT, n_mels=N_MELS)


def load_mono(data: bytes, sample_rate_hz: int) -> Song:
    """Bytes -> the song as (n,) float32 mono at `sample_rate_hz` (channel mean, then soxr HQ, the
    resampling of librosa.load(sr=sample_rate_hz)), checked as `load_song` checks it.

    Decoded in blocks (`_decoded_here`: to the stream's end, refused as soon as it passes the length
    limit), so memory holds one block of the file's channels at a time.
    Raises InputError with a message for a person when the bytes are not a usable song.
    """
    with _one_blas_thread(), _open_audio(data) as f:
        resampler = None if f.samplerate == sample_rate_hz else soxr.ResampleStream(
            f.samplerate, sample_rate_hz, 1, dtype="float32", quality="HQ")
        parts, n_in, peak = [], 0, 0.0
        for block in _decoded_here(f):
            mono = to_mono(block)
            n_in += len(mono)
            if len(mono):
                peak = float(np.maximum(peak, np.max(np.abs(mono))))  # NaN stays NaN
            if peak <= MAX_PEAK:  # False for NaN: a song that will be refused needs no resampling
                parts.append(resampler.resample_chunk(mono) if resampler else mono)
        _check_song(n_in / f.samplerate, peak)
        if resampler:
            parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        n = n_in if not resampler else int(np.ceil(n_in * (float(sample_rate_hz) / f.samplerate)))
        y = np.pad(y, (0, max(0, n - len(y))))[:n]  # librosa.resample's fix_length
        return Song(np.ascontiguousarray(y, dtype=np.float32), n_in / f.samplerate, f.samplerate,
                    f.channels, f.format)
