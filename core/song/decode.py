"""Songs from bytes: every format decoded in memory by FFmpeg (PyAV), streamed, within a budget.

`load_mono(data, rate)` demuxes and decodes the bytes frame by frame, and as each frame arrives
takes its channel mean (`to_mono`) and resamples it (soxr HQ, librosa's `soxr_hq`), so memory
follows the output (mono at the model's rate), not the input. The length that counts is the decoded
one, never a header's (an mp3 without a Xing header, a FLAC or WAV whose header lies or says nothing).

The budget is enforced while decoding, whatever the header declares: a stream whose channels x rate
exceed MAX_INPUT_RATE is refused before any frame is decoded, and every frame is checked again
(a header can lie); the decoding stops as soon as the output passes the length limit, the samples
decoded pass MAX_INPUT_SAMPLES, or the decoding has used MAX_DECODE_CPU_S of CPU time.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

import av
import av.logging
import numpy as np
import soxr

from core.errors import InputError

# FFmpeg's own log lines would go to stderr: a CLI's stderr carries only its own line.
av.logging.set_level(None)

SUPPORTED_FORMATS = ("mp3", "wav", "flac", "ogg", "opus", "m4a", "aac", "webm")
# FFmpeg's demuxers for those formats (container.format.name); any other (an image, a text file
# FFmpeg reads as ANSI art, a video format) is not a song.
_DEMUXERS = {"mp3", "wav", "flac", "ogg", "mov,mp4,m4a,3gp,3g2,mj2", "aac", "matroska,webm"}
MIN_DURATION_S = 1.0
MIN_RECORDING_S = 5.0   # a recording from the microphone: a few seconds of the music at least
MAX_DURATION_S = 15 * 60.0
MAX_OUTPUT_S = MAX_DURATION_S + 1  # the length check allows 1 s over the limit
MAX_CHANNELS = 32
MAX_SAMPLE_RATE_HZ = 192_000
# Samples a second over all channels: stereo at 192 kHz, 7.1 at 48 kHz. This bounds the decoding
# work per second of output; a file over it (8 channels at 192 kHz) is refused before decoding.
MAX_INPUT_RATE = 384_000
MAX_INPUT_SAMPLES = int(MAX_OUTPUT_S * MAX_INPUT_RATE)
# CPU time of the decoding thread: a decoder made to crawl is stopped (core.workers adds a wall limit).
MAX_DECODE_CPU_S = 60.0
BLOCK_FRAMES = 32_768  # decoded frames are taken in blocks of about this many samples a channel
# Peak below this (about -80 dBFS) is silence: there is no mood to read in it.
SILENCE_PEAK = 1e-4
# Float files can hold any value; a peak this far over full scale (+80 dB) is not sound.
MAX_PEAK = 1e4

# Integer sample formats -> the scale to [-1, 1) and the offset (unsigned 8-bit is centred on 128).
_INT_SCALE = {"u8": (1 / 128, 128.0), "s16": (1 / 2 ** 15, 0.0), "s32": (1 / 2 ** 31, 0.0),
              "s64": (1 / 2 ** 63, 0.0)}


@dataclass
class Song:
    samples: np.ndarray      # (n,) float32, mono, at the rate asked of load_mono
    duration_s: float
    original_sample_rate_hz: int
    original_channels: int
    format: str              # the container as FFmpeg names it: "MP3", "WAV", "OGG", "MOV", ...


def recording_too_short(duration_s: float) -> InputError | None:
    """The message for a microphone recording too short to be read as music, or None."""
    if duration_s >= MIN_RECORDING_S:
        return None
    return InputError(f"The recording is only {duration_s:.1f} s long; record at least "
                      f"{MIN_RECORDING_S:.0f} s of the music, close to the speaker.")


def _unreadable() -> InputError:
    return InputError("This file could not be read as audio (it may be damaged, cut short or not a sound "
                      f"file). Supported formats: {', '.join(SUPPORTED_FORMATS)}.")


def _no_audio_stream() -> InputError:
    return InputError(f"The file has no audio stream. Upload a song as {', '.join(SUPPORTED_FORMATS)}.")


def _too_long(decoded_s: float) -> InputError:
    """The message for a song found longer than the limit once decoded_s seconds were read."""
    minutes, seconds = divmod(int(decoded_s), 60)
    return InputError(f"The song is longer than the limit of {MAX_DURATION_S / 60:.0f} minutes (the reading stopped "
                      f"at {minutes} min {seconds} s). Upload a shorter song or an excerpt.")


def _check_layout(channels: int, rate_hz: int) -> None:
    """Refuse a stream (as declared, or as a frame comes) whose shape exceeds the decode budget."""
    if channels <= 0 or rate_hz <= 0:
        raise _no_audio_stream()
    if channels > MAX_CHANNELS:
        raise InputError(f"The file has {channels} channels; at most {MAX_CHANNELS} are supported.")
    if rate_hz > MAX_SAMPLE_RATE_HZ:
        raise InputError(f"The file's sample rate is {rate_hz:,} Hz; at most {MAX_SAMPLE_RATE_HZ:,} Hz is supported.")
    if channels * rate_hz > MAX_INPUT_RATE:
        raise InputError(f"The file has {channels} channels at {rate_hz:,} Hz: more sound data than a song "
                         f"needs (at most {MAX_INPUT_RATE:,} samples a second over all channels, e.g. stereo at "
                         f"{MAX_INPUT_RATE // 2:,} Hz). Upload a stereo version.")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(n, channels) float32 -> (n,) float32, librosa.to_mono's channel mean.

    One matrix-vector product (for 1 or 2 channels the weights 1 and 0.5 are exact). A NaN or
    infinite sample gives a NaN or infinite mean.
    """
    with np.errstate(invalid="ignore"):  # inf and -inf in two channels: NaN, refused by _check_song
        return samples @ np.full(samples.shape[1], 1.0 / samples.shape[1], dtype=np.float32)


def _frame_samples(frame: av.AudioFrame, channels: int) -> np.ndarray:
    """A decoded frame -> (n, channels) float32 in [-1, 1] for integer formats."""
    x = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
    x = x if frame.format.is_planar else x.reshape(-1, channels).T
    scale = _INT_SCALE.get(frame.format.name.rstrip("p"))
    if scale is not None:
        x = (x.astype(np.float32) - np.float32(scale[1])) * np.float32(scale[0])
    return x.astype(np.float32, copy=False).T


def _open(data: bytes) -> tuple[av.container.InputContainer, av.AudioStream]:
    """The bytes as an FFmpeg container (read from memory) and its first audio stream, checked."""
    if not data:
        raise InputError(f"The file is empty. Upload a song as {', '.join(SUPPORTED_FORMATS)}.")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, UnicodeDecodeError, IndexError, OSError):
        raise _unreadable() from None
    try:
        if container.format.name not in _DEMUXERS:
            raise _unreadable()
        streams = container.streams.audio
        if not streams:
            raise _no_audio_stream()
        stream = streams[0]
        _check_layout(int(stream.codec_context.channels or 0), int(stream.codec_context.sample_rate or 0))
        return container, stream
    except BaseException:
        container.close()
        raise


def _check_song(duration_s: float, peak: float) -> None:
    """Refuse a song too long or short, damaged, silent or far over full scale.

    peak: max |mono sample|, NaN or infinite when a sample is (so no separate pass over the samples).
    """
    if duration_s > MAX_OUTPUT_S:
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
                         "within ±1): it is damaged.")


def _decoded_frames(container: av.container.InputContainer, stream: av.AudioStream):
    """The stream's frames in order, to its end. A packet the decoder refuses is skipped (as a
    player skips a damaged stretch); a container cut short ends at its last whole packet. Bytes
    from which no frame decodes are not usable audio."""
    packets, decoded = container.demux(stream), False
    while True:
        try:
            packet = next(packets, None)
        except (av.FFmpegError, ValueError, MemoryError):
            packet = None  # the container is cut short or damaged past here: flush what was read
        try:
            frames = stream.decode(packet)
        except (av.FFmpegError, ValueError):
            frames = []
        for frame in frames:
            decoded = True
            yield frame
        if packet is None:
            if not decoded:
                raise _unreadable()
            return


def load_mono(data: bytes, sample_rate_hz: int) -> Song:
    """Bytes -> the song as (n,) float32 mono at `sample_rate_hz`: the channel mean, then soxr HQ
    and librosa.resample's fix_length (librosa.load(sr=sample_rate_hz, res_type="soxr_hq")).

    Raises InputError with a message for a person when the bytes are not a usable song, as soon as
    the decoding shows it (see the module's docstring for the budget).
    """
    container, stream = _open(data)
    with container:
        fmt = container.format.name.split(",")[0].upper()
        cpu_start = time.thread_time()
        rate = channels = 0
        resampler, block, parts, n_in, n_decoded, peak = None, [], [], 0, 0, 0.0

        def take(block: list[np.ndarray]) -> None:
            """The next frames' samples through the channel mean and the resampler."""
            nonlocal n_in, peak
            mono = to_mono(np.concatenate(block) if len(block) > 1 else block[0])
            n_in += len(mono)
            peak = float(np.maximum(peak, np.max(np.abs(mono))))  # NaN stays NaN
            if peak <= MAX_PEAK:  # False for NaN: a song that will be refused needs no resampling
                parts.append(resampler.resample_chunk(mono) if resampler else mono)
            if time.thread_time() - cpu_start > MAX_DECODE_CPU_S:
                raise InputError(f"The file took more than {MAX_DECODE_CPU_S:.0f} s to decode (it may be damaged "
                                 "or made to stall a decoder). Upload it in another format.")

        for frame in _decoded_frames(container, stream):
            if not rate:  # the first frame's shape counts (a header's can differ, e.g. HE-AAC)
                rate, channels = int(frame.sample_rate), len(frame.layout.channels)
                _check_layout(channels, rate)
                if rate != sample_rate_hz:
                    resampler = soxr.ResampleStream(rate, sample_rate_hz, 1, dtype="float32", quality="HQ")
            elif (frame.sample_rate, len(frame.layout.channels)) != (rate, channels):
                raise _unreadable()  # a stream whose rate or channels change partway
            if n_decoded // channels + frame.samples > MAX_OUTPUT_S * rate:
                raise _too_long(MAX_OUTPUT_S)
            n_decoded += frame.samples * channels
            if n_decoded > MAX_INPUT_SAMPLES:  # a backstop: the checks of the shape keep it below
                raise _too_long(n_decoded / channels / rate)
            if frame.samples:
                block.append(_frame_samples(frame, channels))
            if n_decoded // channels - n_in >= BLOCK_FRAMES:  # frames in blocks: less overhead a frame
                take(block)
                block = []
        if block:
            take(block)
        duration_s = n_in / rate if rate else 0.0
        _check_song(duration_s, peak)
        if resampler:
            parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        y = np.concatenate(parts)
        n = n_in if not resampler else int(np.ceil(n_in * (float(sample_rate_hz) / rate)))
        y = np.pad(y, (0, max(0, n - len(y))))[:n]  # librosa.resample's fix_length
        return Song(np.ascontiguousarray(y, dtype=np.float32), duration_s, rate, channels, fmt)
