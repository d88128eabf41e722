"""Songs made in memory to test the decoder's length truths and its budget (none is stored): FLACs
built by repeating the frames of a short encoded stretch (FFmpeg decodes each frame on its own, so
a 14-min file costs seconds to make), and a CBR mp3 with an ID3v2 tag and no Xing/Info frame."""

from __future__ import annotations

import io

import av
import numpy as np

from tests.hostile_files import _mp3_frame_length, ffmpeg_encoded

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


def flac_parts(y: np.ndarray, sample_rate_hz: int) -> tuple[bytes, bytes]:
    """(n, channels) float32 in [-1, 1] -> a 16-bit FLAC encoded by PyAV, as (its metadata blocks
    from 'fLaC' on, its frames)."""
    buffer = io.BytesIO()
    layout = LAYOUTS[y.shape[1]]
    with av.open(buffer, mode="w", format="flac") as out:
        stream = out.add_stream("flac", rate=sample_rate_hz, layout=layout)
        stream.codec_context.format = "s16"
        pcm = (np.clip(y, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 4608):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[start:start + 4608]).reshape(1, -1),
                                               format="s16", layout=layout)
            frame.sample_rate, frame.pts = sample_rate_hz, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data = buffer.getvalue()
    at = 4
    while True:  # metadata blocks: a 4-byte header each (last-block flag, 24-bit size)
        last, size = data[at] & 0x80, int.from_bytes(data[at + 1:at + 4], "big")
        at += 4 + size
        if last:
            return data[:at], data[at:]


def streaminfo(header: bytes, total_samples: int | None = None, sample_rate_hz: int | None = None,
               channels: int | None = None) -> bytes:
    """FLAC metadata blocks with STREAMINFO's length (MD5 then unknown), rate or channels replaced."""
    data = bytearray(header)
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first, its 34 bytes from byte 8
    info = 8
    if total_samples is not None:
        data[info + 13] = (data[info + 13] & 0xF0) | (total_samples >> 32 & 0x0F)
        data[info + 14:info + 18] = (total_samples & 0xFFFFFFFF).to_bytes(4, "big")
        data[info + 18:info + 34] = bytes(16)
    bits = int.from_bytes(data[info + 10:info + 13], "big")  # rate (20 bits), channels - 1 (3), bps - 1 (1 of 5)
    if sample_rate_hz is not None:
        bits = (bits & 0xFFF) | sample_rate_hz << 4
    if channels is not None:
        bits = (bits & ~0xE) | (channels - 1) << 1
    data[info + 10:info + 13] = bits.to_bytes(3, "big")
    return bytes(data)


def flac_bomb(channels: int = 8, sample_rate_hz: int = 192_000, minutes: float = 14.0,
              declared: tuple[int, int] | None = None) -> bytes:
    """A small FLAC whose frames hold `minutes` of silence at channels x sample_rate_hz (1.29 G
    samples for the defaults, in under 2 MB); `declared` = (channels, rate) puts another shape in
    STREAMINFO than the frames carry."""
    header, frames = flac_parts(np.zeros((sample_rate_hz, channels), np.float32), sample_rate_hz)
    seconds = int(minutes * 60)
    channels_said, rate_said = declared or (channels, sample_rate_hz)
    return streaminfo(header, seconds * rate_said, rate_said, channels_said) + frames * seconds


def long_flac(minutes: float = 14.0, sample_rate_hz: int = 96_000, stretch_s: int = 10) -> bytes:
    """A stereo FLAC of `minutes` of music: a stretch_s-second stretch's frames, repeated."""
    from tests.conftest import music_like

    y = music_like(stretch_s, sample_rate_hz, channels=2, seed=31) * 0.5
    header, frames = flac_parts(y, sample_rate_hz)
    repeats = int(minutes * 60 / stretch_s)
    return streaminfo(header, repeats * stretch_s * sample_rate_hz) + frames * repeats


def cbr_mp3_with_id3_without_info(y: np.ndarray, sample_rate_hz: int = 44100) -> bytes:
    """A CBR mp3 (FFmpeg's LAME) with an ID3v2 tag in front and its Info frame (the length
    header) cut out, as many ripped songs are: libsndfile could not open it once the file's size
    was hidden from it."""
    data = ffmpeg_encoded(y, sample_rate_hz, "mp3", "libmp3lame")
    assert data[:3] == b"ID3"
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)
    first = 10 + size
    length = _mp3_frame_length(data[first:first + 4])
    assert b"Info" in data[first:first + length] or b"Xing" in data[first:first + length]
    data = data[:first] + data[first + length:]
    assert b"Info" not in data[first:first + 200] and b"Xing" not in data[first:first + 200]
    return data
