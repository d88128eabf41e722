"""Hostile and unusual files, made in memory by the tests (none is stored): pictures made to stall
or fool a decoder, and songs whose headers lie about their length."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import soundfile as sf
from PIL import Image, PngImagePlugin

from tests.conftest import music_like, wav_bytes

# --- pictures ------------------------------------------------------------------------------------


def progressive_jpeg(side_px: int, repeat_last_scan: int = 1) -> bytes:
    """A progressive grey JPEG from Pillow, its last scan (from its last FF DA to the end marker)
    repeated: each copy is decoded again, over the whole picture."""
    buffer = io.BytesIO()
    Image.new("L", (side_px, side_px), 128).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:last] + data[last:end] * repeat_last_scan + data[end:]


def radiance_hdr_posing_as_photo_cd(side_px: int = 2000) -> bytes:
    """A Radiance HDR picture with `PCD_` at byte 2048: Pillow's header check read it as a 768x512
    Photo CD, and OpenCV decoded it at full size, through a file it wrote in the temp folder."""
    data = bytearray(cv2.imencode(".hdr", np.full((side_px, side_px, 3), 0.5, np.float32))[1].tobytes())
    assert len(data) > 2052
    data[2048:2052] = b"PCD_"
    return bytes(data)


def png_with_large_chunks(image: np.ndarray, text_bytes: int = 3_000_000, icc_bytes: int = 0) -> bytes:
    """A PNG with a large compressed text chunk (over Pillow's 1-MB MAX_TEXT_CHUNK) or ICC profile."""
    info = PngImagePlugin.PngInfo()
    if text_bytes:
        info.add_text("comment", "x" * text_bytes, zip=True)
    buffer = io.BytesIO()
    icc = {"icc_profile": np.random.default_rng(0).bytes(icc_bytes)} if icc_bytes else {}
    Image.fromarray(image).save(buffer, "PNG", pnginfo=info, **icc)
    return buffer.getvalue()


# --- songs whose headers lie ---------------------------------------------------------------------

# Layer III bitrates (kbit/s) and sample rates (Hz) of MPEG-1 (32 to 48 kHz) and MPEG-2 (16 to 24 kHz).
_L3_KBPS = {1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
            2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_RATES_HZ = {1: (44100, 48000, 32000), 2: (22050, 24000, 16000)}


def _mp3_frame_length(header: bytes) -> int:
    """Bytes in an MPEG-1 or MPEG-2 Layer III frame (what libsndfile's LAME writes)."""
    assert header[0] == 0xFF and header[1] & 0xF6 == 0xF2, "not an MPEG-1 or MPEG-2 Layer III frame"
    version = 1 if header[1] & 0x08 else 2
    kbps, rate_hz = _L3_KBPS[version][header[2] >> 4], _RATES_HZ[version][(header[2] >> 2) & 3]
    return (144_000 if version == 1 else 72_000) * kbps // rate_hz + ((header[2] >> 1) & 1)


def vbr_mp3_without_xing(y: np.ndarray, sample_rate_hz: int = 44100) -> bytes:
    """A VBR mp3 (libsndfile's LAME) whose first frame, the Xing/Info header that gives the true
    length, is cut off: libsndfile then guesses the length from the first frame's bitrate."""
    buffer = io.BytesIO()
    sf.write(buffer, y, sample_rate_hz, format="MP3", bitrate_mode="VARIABLE", compression_level=0.9)
    data = buffer.getvalue()
    first = _mp3_frame_length(data[:4])
    assert b"Xing" in data[:first] or b"Info" in data[:first], "no Xing/Info frame to cut"
    return data[first:]


def loud_then_quiet(seconds: float, loud_s: float, sample_rate_hz: int = 44100, seed: int = 0) -> np.ndarray:
    """Stereo music whose first loud_s seconds are loud and the rest quiet (many bits, then few)."""
    y = music_like(seconds, sample_rate_hz, channels=2, seed=seed)
    y[int(loud_s * sample_rate_hz):] *= 0.02
    return y


def quiet_then_loud(seconds: float, quiet_s: float, sample_rate_hz: int = 22050, seed: int = 0) -> np.ndarray:
    """Mono: quiet_s seconds of silence, then loud noisy music (few bits, then many)."""
    rng = np.random.default_rng(seed)
    y = music_like(seconds, sample_rate_hz, seed=seed)
    y += rng.normal(0, 0.2, y.shape).astype(np.float32)
    y[:int(quiet_s * sample_rate_hz)] = 0
    return np.clip(y, -1, 1)


def flac_of_unknown_length(y: np.ndarray, sample_rate_hz: int) -> bytes:
    """A FLAC whose STREAMINFO says 'length unknown' (0 samples, no MD5), as one encoded from a pipe."""
    data = bytearray(wav_bytes(y, sample_rate_hz, fmt="FLAC"))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first, its 34 bytes from byte 8
    data[8 + 13] &= 0xF0          # total samples: the low 4 bits of byte 13 and bytes 14..17
    data[8 + 14:8 + 18] = bytes(4)
    data[8 + 18:8 + 34] = bytes(16)  # MD5 of the samples: unknown
    return bytes(data)


def wav_with_data_size_0(y: np.ndarray, sample_rate_hz: int) -> bytes:
    """A wav whose data chunk says 0 bytes, its samples all there (a recorder that never went back)."""
    data = wav_bytes(y, sample_rate_hz)
    at = data.find(b"data")
    assert at > 0 and struct.unpack_from("<I", data, at + 4)[0] > 0
    return data[:at + 4] + bytes(4) + data[at + 8:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def opencv_decode(data: bytes) -> tuple | None:
    """cv2.imdecode on the bytes with no check before it, as the app decoded pictures before: the
    file-system watch's control (for a Radiance HDR, OpenCV writes the bytes to a temp file)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return None if image is None else image.shape


# --- songs in the containers FFmpeg reads --------------------------------------------------------

def ffmpeg_encoded(y: np.ndarray, sample_rate_hz: int, container: str, codec: str, channels: int = 2) -> bytes:
    """A mono float signal encoded in memory by FFmpeg (PyAV): e.g. ("ipod", "aac") an m4a as
    phones and music stores give, ("adts", "aac") a bare AAC stream, ("webm", "libopus") what a
    browser records."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate_hz, layout="stereo" if channels == 2 else "mono")
        size = stream.codec_context.frame_size or 1024
        planar = stream.codec_context.format.is_planar
        x = np.repeat(np.asarray(y, np.float32)[None], channels, axis=0)
        for start in range(0, x.shape[1], size):
            chunk = np.ascontiguousarray(x[:, start:start + size])
            frame = av.AudioFrame.from_ndarray(chunk if planar else chunk.T.reshape(1, -1),
                                               format="fltp" if planar else "flt", layout=stream.layout.name)
            frame.sample_rate, frame.pts = sample_rate_hz, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def flac_claiming(y: np.ndarray, sample_rate_hz: int, claimed_s: float) -> bytes:
    """A FLAC whose STREAMINFO says it is claimed_s long, whatever its frames hold."""
    data = bytearray(wav_bytes(y, sample_rate_hz, fmt="FLAC"))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    n = int(claimed_s * sample_rate_hz)
    data[8 + 13] = (data[8 + 13] & 0xF0) | (n >> 32 & 0x0F)
    data[8 + 14:8 + 18] = (n & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(data)
