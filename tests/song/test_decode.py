"""core.song.decode: one decoder (FFmpeg through PyAV) for every format, the length that counts
is the decoded one, clear messages for files that are not usable songs, and a decode budget."""

import io
import json
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from core.errors import InputError
from core.song import decode as audio
from tests import hostile_files
from tests.conftest import MUSIC_DIR, ROOT, music_like, require_shared, wav_bytes
from tests.song import budget_files

RATE = 16000  # musicnn's, what the app asks for
# Decoded and resampled samples of the same signal by two routes: 1e-4 of full scale (-80 dBFS).
SAMPLES_FULL_SCALE = 1e-4


def load(data: bytes) -> audio.Song:
    return audio.load_mono(data, RATE)


def _reference(y: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """The same signal through the plainest route: a float wav (no codec) -> 16 kHz mono."""
    return load(wav_bytes(y, sample_rate_hz, subtype="FLOAT")).samples


# --- every format the README lists decodes --------------------------------------------------------

FORMATS = {  # name: (container, codec, rate); made by PyAV's encoders (Ogg Vorbis: libsndfile's, as
             # PyAV's wheels have no libvorbis and FFmpeg's own Vorbis encoder is experimental)
    "mp3": ("mp3", "libmp3lame", 44100), "wav": ("wav", "pcm_s16le", 44100), "flac": ("flac", "flac", 48000),
    "ogg": ("ogg", "vorbis", 44100), "opus": ("ogg", "libopus", 48000), "m4a": ("ipod", "aac", 44100),
    "aac": ("adts", "aac", 44100), "webm": ("webm", "libopus", 48000),
}


@pytest.mark.parametrize("name", FORMATS)
def test_every_listed_format_decodes_to_the_same_music(name):
    assert set(FORMATS) == set(audio.SUPPORTED_FORMATS)
    container, codec, rate = FORMATS[name]
    y = music_like(12.0, rate, seed=21)
    if codec == "vorbis":
        data = wav_bytes(np.stack([y, y], axis=1), rate, fmt="OGG")
    else:
        data = hostile_files.ffmpeg_encoded(y, rate, container, codec)
    song = load(data)
    assert song.duration_s == pytest.approx(12.0, abs=0.1) and song.original_channels == 2
    assert song.original_sample_rate_hz == rate
    # A lossy codec: the same music within its noise, not the same samples. Compare the spectra
    # (a codec's delay of a few ms does not move them); a wrong rate or channel layout would.
    spectrum = lambda x: np.abs(np.fft.rfft(x[:RATE * 10]))  # noqa: E731
    assert np.corrcoef(spectrum(song.samples), spectrum(_reference(y, rate)))[0, 1] > 0.95


def test_a_lossless_file_decodes_to_its_samples_resampled_as_librosa_does():
    import librosa

    y = music_like(5.0, 44100, channels=2, seed=3)
    song = load(wav_bytes(y, 44100, subtype="FLOAT"))
    expected = librosa.resample(librosa.to_mono(y.T), orig_sr=44100, target_sr=RATE, res_type="soxr_hq")
    assert len(song.samples) == len(expected)
    np.testing.assert_allclose(song.samples, expected, rtol=0, atol=1e-6)


def test_multichannel_and_96_khz_songs_just_work():
    six = load(wav_bytes(music_like(3.0, 48000, channels=6), 48000))
    assert six.original_channels == 6 and six.samples.ndim == 1
    hi = load(wav_bytes(music_like(3.0, 96000), 96000, subtype="PCM_24"))
    assert hi.original_sample_rate_hz == 96000 and len(hi.samples) == 3 * RATE


# --- lengths come from decoding, not from a header that can lie ------------------------------------

def test_a_cbr_mp3_with_an_id3v2_tag_and_no_info_frame_gives_its_true_length():
    # libsndfile could not open such a file once its size was hidden from it (issue 23, item 1).
    y = music_like(30.0, 44100, seed=5)
    data = budget_files.cbr_mp3_with_id3_without_info(y)
    song = load(data)
    # No Info frame: the encoder's delay and padding (under 0.05 s) are not trimmed.
    assert song.duration_s == pytest.approx(30.0, abs=0.05) and song.format == "MP3"


def test_a_vbr_mp3_without_a_xing_header_is_read_to_its_real_end():
    data = hostile_files.vbr_mp3_without_xing(hostile_files.loud_then_quiet(60.0, 5.0))
    assert load(data).duration_s == pytest.approx(60.0, abs=0.1)
    half = load(data[:len(data) // 2])  # its sound stops near the middle of its bytes, not of its time
    assert 5.0 < half.duration_s < 59.0


@pytest.mark.parametrize("make", ["flac_of_unknown_length", "wav_with_data_size_0", "wav_with_data_size_max",
                                  "flac_claiming_10_s", "flac_claiming_120_s"])
def test_a_header_that_lies_or_says_nothing_gives_the_decoded_length(make):
    y = music_like(40.0, 22050, seed=6)
    data = {
        "flac_of_unknown_length": lambda: hostile_files.flac_of_unknown_length(y, 22050),
        "wav_with_data_size_0": lambda: hostile_files.wav_with_data_size_0(y, 22050),
        "wav_with_data_size_max": lambda: _wav_data_size(wav_bytes(y, 22050), 0xFFFFFFFF),
        "flac_claiming_10_s": lambda: hostile_files.flac_claiming(y, 22050, 10.0),
        "flac_claiming_120_s": lambda: hostile_files.flac_claiming(y, 22050, 120.0),
    }[make]()
    song = load(data)
    assert song.duration_s == pytest.approx(40.0, abs=1e-6)
    np.testing.assert_allclose(song.samples, load(wav_bytes(y, 22050)).samples, rtol=0, atol=SAMPLES_FULL_SCALE)


def _wav_data_size(data: bytes, size: int) -> bytes:
    at = data.find(b"data")
    return data[:at + 4] + size.to_bytes(4, "little") + data[at + 8:]


# --- clear messages --------------------------------------------------------------------------------

def _m4a_without_audio() -> bytes:
    """An MP4 with one video stream and no audio."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def _with_nan() -> bytes:
    y = music_like(3.0, 22050)
    y[1000] = np.nan
    return wav_bytes(y, 22050, subtype="FLOAT")


BAD_SONGS = {
    "empty": (lambda: b"", "The file is empty"),
    "text renamed to mp3": (lambda: b"These are not the songs you are looking for.\n" * 50, "could not be read as audio"),
    "png renamed to wav": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(500), "could not be read as audio"),
    "m4a header with no streams": (lambda: b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(4000),
                                   "Supported formats: mp3"),
    "m4a with video only": (_m4a_without_audio, "no audio stream"),
    "mp3 cut to its first 400 bytes": (lambda: wav_bytes(music_like(5.0), 22050, fmt="MP3")[:400],
                                       "could not be read as audio"),
    "silence": (lambda: wav_bytes(np.zeros(22050 * 3, np.float32), 22050), "silent"),
    "half a second": (lambda: wav_bytes(music_like(0.5), 22050), "at least 1 s"),
    "NaN sample": (_with_nan, r"invalid values \(NaN or infinity\)"),
    "1e6 x full scale": (lambda: wav_bytes(music_like(3.0, 22050) * 1e6, 22050, subtype="FLOAT"), "beyond full scale"),
    "33 channels": (lambda: wav_bytes(music_like(1.5, 8000, channels=33), 8000), "33 channels; at most 32"),
}


@pytest.mark.parametrize("name", BAD_SONGS)
def test_bad_songs_get_a_clear_error(name):
    make, expected = BAD_SONGS[name]
    with pytest.raises(InputError, match=expected):
        load(make())


def test_a_damaged_stretch_is_skipped_and_a_cut_song_scored_on_what_is_there():
    data = wav_bytes(music_like(20.0, 44100, channels=2, seed=9), 44100, fmt="MP3")
    garbled = bytearray(data)
    garbled[len(data) // 3:len(data) // 3 + 4000] = np.random.default_rng(0).bytes(4000)
    assert load(bytes(garbled)).duration_s == pytest.approx(20.0, abs=1.0)
    assert 8.0 < load(data[:len(data) // 2]).duration_s < 12.0


def test_ffmpeg_writes_nothing_to_stderr():
    code = ("from core.song import decode\n"
            "for data in (b'ID3' + bytes(300), open(0, 'rb').read()):\n"
            "    try: decode.load_mono(data, 16000)\n"
            "    except Exception as e: pass\n")
    garbled = bytearray(wav_bytes(music_like(5.0, 44100), 44100, fmt="MP3"))
    garbled[3000:6000] = bytes(3000)
    done = subprocess.run([sys.executable, "-c", code], input=bytes(garbled), cwd=ROOT, capture_output=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == b""


def test_a_microphone_recording_needs_a_few_seconds_of_music():
    assert audio.recording_too_short(audio.MIN_RECORDING_S) is None
    message = str(audio.recording_too_short(3.2))
    assert "only 3.2 s long" in message and f"at least {audio.MIN_RECORDING_S:.0f} s" in message


# --- the decode budget ------------------------------------------------------------------------------

def _counting_frames(monkeypatch) -> list[int]:
    """Samples a channel of every frame the decoder converts, as it converts them."""
    seen, convert = [], audio._frame_samples
    monkeypatch.setattr(audio, "_frame_samples", lambda frame, channels: seen.append(frame.samples)
                        or convert(frame, channels))
    return seen


def test_a_song_over_the_limit_is_refused_as_its_decoding_passes_the_limit(monkeypatch):
    seen = _counting_frames(monkeypatch)
    data = budget_files.flac_bomb(1, 4000, audio.MAX_DURATION_S / 60 + 5, declared=(1, 4000))
    data = budget_files.streaminfo(data, total_samples=0)  # says nothing of its length
    with pytest.raises(InputError, match="longer than the limit of 15 minutes"):
        load(data)
    assert (audio.MAX_DURATION_S + 1) * 4000 - 4000 < sum(seen) <= (audio.MAX_DURATION_S + 1) * 4000


@pytest.mark.parametrize("declared", [None, (2, 48000)])
def test_a_flac_bomb_is_answered_before_its_frames_are_decoded(monkeypatch, declared):
    """8 channels at 192 kHz for 14 min (1.29 G samples) in a small file: refused from the header,
    or from its first frame when the header declares a modest stereo stream."""
    data = budget_files.flac_bomb(8, 192_000, 14.0, declared=declared)
    assert len(data) < 2_000_000
    seen = _counting_frames(monkeypatch)
    start = time.perf_counter()
    with pytest.raises(InputError, match="8 channels at 192,000 Hz"):
        load(data)
    assert time.perf_counter() - start < 5.0 and sum(seen) == 0  # a generous bound: it takes ms


@pytest.mark.slow
def test_a_14_minute_96_khz_stereo_flac_gives_a_result_within_the_budget():
    data = budget_files.long_flac(14.0, 96_000)
    song = load(data)
    assert song.duration_s == pytest.approx(14 * 60, abs=0.1) and len(song.samples) == 14 * 60 * RATE


def test_the_budget_bench_measures_the_bomb_in_seconds_and_under_a_gigabyte():
    done = subprocess.run([sys.executable, "-m", "bench.song_decode_budget", "--bomb-only"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (bomb,) = json.loads(done.stdout)["cases"]
    assert "8 channels at 192,000 Hz" in bomb["answer"]
    assert bomb["seconds"] < 5.0 and bomb["peak_rss_mb"] < 1000


# --- evaluating a real folder: unreadable and missing songs are skipped and named ----------------------

def _music_folder(tmp_path, songs: dict[str, bytes | None]):
    (tmp_path / "songs").mkdir()
    lines = ["song_id,valence,arousal,quadrant"]
    for i, (song_id, data) in enumerate(songs.items()):
        if data is not None:
            (tmp_path / "songs" / f"{song_id}.mp3").write_bytes(data)
        lines.append(f"{song_id},{0.3 + 0.1 * i:.2f},{0.7 - 0.1 * i:.2f},Q{1 + i % 4}")
    (tmp_path / "annotations.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def _evaluate(folder) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.evaluate", "song", "--data", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_evaluate_skips_and_names_unreadable_and_missing_songs(tmp_path):
    require_shared(MUSIC_DIR / "clips")
    clips = sorted((MUSIC_DIR / "clips").glob("*.mp3"))[:3]
    songs = {p.stem: p.read_bytes() for p in clips}
    songs |= {"MT_DAMAGED": clips[0].read_bytes()[:300], "MT_MISSING": None}
    done = _evaluate(_music_folder(tmp_path, songs))
    assert done.returncode == 0, done.stderr
    skipped = {s["song_id"]: s["reason"] for s in json.loads(done.stdout)["skipped"]}
    assert set(skipped) == {"MT_DAMAGED", "MT_MISSING"}
    assert "could not be read as audio" in skipped["MT_DAMAGED"] and "no audio" in skipped["MT_MISSING"]


@pytest.mark.slow
def test_evaluate_fails_when_no_song_could_be_scored(tmp_path):
    done = _evaluate(_music_folder(tmp_path, {"MT_DAMAGED": b"not audio" * 100, "MT_MISSING": None}))
    assert done.returncode == 2 and "no song" in done.stderr and done.stdout == ""

