import csv
import io
import threading

import numpy as np
import pytest
import soundfile as sf

from core.song import decode as audio
from core.errors import InputError
from tests.conftest import MUSIC_DIR, music_like, require_shared, wav_bytes


# What the recipe promises, on any CPU (FFT, BLAS and resampler kernels differ in the last bits):
# - against the stored float16 rows: within one float16 step of the stored value (0.031 dB between
#   32 and 64 dB below the peak, 0.0625 dB below that);
# - between two code paths of ours (streamed or whole, worker or here): 1e-4 dB in float32;
# - decoded and resampled samples: 1e-6 of full scale (-120 dBFS).
# A real recipe change (hop, window, resampler, dB reference) moves values by whole dB:
# test_the_tolerances_catch_a_changed_recipe plants such changes and sees the checks fail.
PATHS_DB = 1e-4
SAMPLES_FULL_SCALE = 1e-6


def assert_within_a_float16_step(features: np.ndarray, stored: np.ndarray, label: str = "") -> None:
    """float32 dB features against stored float16 rows: every value within one float16 step."""
    stored = np.asarray(stored)
    step = np.spacing(np.abs(stored).astype(np.float16)).astype(np.float32)
    off = np.abs(features.astype(np.float32) - stored.astype(np.float32))
    worst = int(np.argmax(off - step))
    assert np.all(off <= step), (f"{label}: {int((off > step).sum())} of {off.size} values off by more than "
                                 f"a float16 step; worst {off.flat[worst]:.4f} dB at {stored.flat[worst]} dB")


def _demo_clips() -> list[dict]:
    require_shared()
    with open(MUSIC_DIR / "clips" / "clips.csv", newline="") as f:
        return list(csv.DictReader(f))


def _stored_rows() -> tuple[dict, np.ndarray]:
    with np.load(MUSIC_DIR / "features_logmel.npz") as npz:
        return {song_id: i for i, song_id in enumerate(npz["song_id"])}, npz["logmel"]


def test_features_of_the_20_demo_clips_match_the_stored_rows():
    clips = _demo_clips()
    with np.load(MUSIC_DIR / "features_logmel.npz") as npz:
        rows = {song_id: i for i, song_id in enumerate(npz["song_id"])}
        stored = npz["logmel"]
    assert len(clips) == 20
    for clip in clips:
        data = (MUSIC_DIR / "clips" / clip["file"]).read_bytes()
        song = audio.load_song(data)
        features = audio.logmel(song.samples)
        assert features.shape == (646, 128)
        assert_within_a_float16_step(features, stored[rows[clip["song_id"]]], clip["file"])
        _, starts, streamed = audio.load_song_windows(data)  # the app's path: decoding overlapped
        assert starts.tolist() == [0.0]
        assert_within_a_float16_step(streamed[0], stored[rows[clip["song_id"]]], clip["file"] + " (streamed)")


PLANTED_CHANGES = {
    "hop 1000 instead of 1024": dict(hop_length=1000),
    "Hamming window instead of Hann": dict(window="hamming"),
    "another resampler (polyphase)": dict(res_type="polyphase"),
    "a fixed 0-dB reference instead of the clip's peak": dict(ref=1.0),
    "fmax 8 kHz instead of sr/2": dict(fmax=8000),
}


@pytest.mark.parametrize("change", PLANTED_CHANGES)
def test_the_tolerances_catch_a_changed_recipe(change):
    """The float16-step check fails on a real recipe change: it is a tolerance, not a blindfold."""
    import librosa

    clip = _demo_clips()[0]
    rows, stored = _stored_rows()
    kw = dict(hop_length=audio.HOP_LENGTH, window="hann", res_type="soxr_hq", ref=np.max, fmax=None)
    kw.update(PLANTED_CHANGES[change])
    y, _ = librosa.load(MUSIC_DIR / "clips" / clip["file"], sr=audio.SAMPLE_RATE_HZ, mono=True, res_type=kw["res_type"])
    y = np.pad(y, (0, max(0, audio.WINDOW_SAMPLES - len(y))))[:audio.WINDOW_SAMPLES]
    power = librosa.feature.melspectrogram(y=y, sr=audio.SAMPLE_RATE_HZ, n_fft=audio.N_FFT, hop_length=kw["hop_length"],
                                           window=kw["window"], n_mels=audio.N_MELS, fmax=kw["fmax"])
    planted = librosa.power_to_db(power, ref=kw["ref"]).T
    n = min(len(planted), audio.WINDOW_FRAMES)
    with pytest.raises(AssertionError, match="float16 step"):
        assert_within_a_float16_step(planted[:n], stored[rows[clip["song_id"]]][:n], change)


@pytest.mark.parametrize("seconds", [30.0, 95.3])
def test_mel_power_is_librosas_melspectrogram_to_the_bit(seconds):
    import librosa

    y = music_like(seconds, seed=3)
    expected = librosa.feature.melspectrogram(y=y, sr=audio.SAMPLE_RATE_HZ, n_fft=audio.N_FFT,
                                              hop_length=audio.HOP_LENGTH, n_mels=audio.N_MELS)
    got = audio.mel_power(y)
    assert got.dtype == expected.dtype
    # float rounding of the same sums in another order: 1e-5 of each value (far below 1e-4 dB)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-12 * expected.max())


def test_logmel_pads_a_short_clip_to_646_frames_in_db():
    features = audio.logmel(music_like(5.0))
    assert features.shape == (audio.WINDOW_FRAMES, audio.N_MELS) == (646, 128)
    assert features.max() == 0.0 and features.min() >= -80.0
    assert np.all(features[-100:] == -80.0)  # zero padding after 5 s is the floor


def test_a_short_song_is_one_window_equal_to_the_recipe():
    y = music_like(20.0)
    starts, windows = audio.song_windows(y)
    assert starts.tolist() == [0.0]
    np.testing.assert_allclose(windows[0], audio.logmel(y), rtol=0, atol=PATHS_DB)


def test_a_clip_s_window_is_the_recipe_summed_on_one_blas_thread():
    # One BLAS thread, like a long song's windows: on two, OpenBLAS sums the mel product in
    # another order (up to 2e-5 dB off) and spends twice the CPU time on it.
    data = wav_bytes(music_like(30.0, 44100, channels=2), 44100)
    song, starts, windows = audio.load_song_windows(data)
    assert starts.tolist() == [0.0]
    with audio._one_blas_thread():
        np.testing.assert_allclose(windows[0], audio.logmel(song.samples), rtol=0, atol=PATHS_DB)


def test_a_long_song_is_scored_in_overlapping_windows_to_its_end():
    y = music_like(95.0)
    starts, windows = audio.song_windows(y)
    assert windows.shape[1:] == (646, 128) and len(starts) == len(windows) == 8
    assert np.diff(starts).max() <= 10.0
    assert np.all(np.diff(starts) <= audio.WINDOW_S)            # overlapping
    assert starts[-1] + audio.WINDOW_S == pytest.approx(95.0, abs=0.1)  # last ends at the end
    assert np.allclose(windows.max(axis=(1, 2)), 0.0)          # each window's own 0-dB reference


def test_multichannel_and_96_khz_songs_just_work():
    six = audio.load_song(wav_bytes(music_like(3.0, 48000, channels=6), 48000))
    assert six.original_channels == 6 and six.samples.ndim == 1
    hi = audio.load_song(wav_bytes(music_like(3.0, 96000), 96000))
    assert hi.original_sample_rate_hz == 96000
    assert len(hi.samples) == pytest.approx(3.0 * audio.SAMPLE_RATE_HZ, abs=2)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG"])
def test_flac_and_ogg_decode_from_memory(fmt):
    song = audio.load_song(wav_bytes(music_like(2.0), 22050, fmt=fmt))
    assert song.duration_s == pytest.approx(2.0, abs=0.05)


def _load_mono_16k(data: bytes) -> audio.Song:
    """The song model's decoding (core.song.features): the same checks, at musicnn's 16 kHz."""
    return audio.load_mono(data, 16000)


BAD_SONGS = {
    "empty": (b"", "empty"),
    "text renamed to mp3": (b"These are not the songs you are looking for.\n" * 50, "could not be read as audio"),
    "png renamed to wav": (b"\x89PNG\r\n\x1a\n" + bytes(500), "could not be read as audio"),
    "m4a header with no audio": (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(4000), "Supported formats: mp3"),
    "silence": (wav_bytes(np.zeros(22050 * 3, np.float32), 22050), "silent"),
    "half a second": (wav_bytes(music_like(0.5), 22050), "at least 1 s"),
}


@pytest.mark.parametrize("load", [audio.load_song, audio.load_song_windows, _load_mono_16k])
@pytest.mark.parametrize("name", BAD_SONGS)
def test_bad_songs_get_a_clear_error(name, load):
    data, expected = BAD_SONGS[name]
    with pytest.raises(InputError, match=expected):
        load(data)


@pytest.mark.parametrize("load", [audio.load_song, audio.load_song_windows, _load_mono_16k])
def test_a_song_over_the_limit_is_refused_as_its_decoding_passes_the_limit(load, monkeypatch):
    # The length that counts is the decoded one (headers can lie), and the reading stops at the limit.
    minutes = audio.MAX_DURATION_S / 60 + 4
    data = wav_bytes(np.zeros(int(minutes * 60 * 2000), np.int16), 2000, subtype="PCM_16")
    read, read_block = [], audio._read_block
    monkeypatch.setattr(audio, "_read_block", lambda f, n: read.append(n) or read_block(f, n))
    with pytest.raises(InputError, match="longer than the limit of 15 minutes"):
        load(data)
    assert (audio.MAX_DURATION_S + 1) * 2000 < sum(read) <= (audio.MAX_DURATION_S + 1) * 2000 + audio.DECODE_BLOCK_FRAMES


@pytest.mark.parametrize("load", [audio.load_song, lambda data: audio.load_song_windows(data)[0], _load_mono_16k])
def test_a_truncated_mp3_gives_a_result_or_a_clear_error(real_clip, load):
    name, data = real_clip
    for cut in (len(data) // 2, 2000, 200):
        try:
            song = load(data[:cut])
        except InputError as e:
            assert "audio" in str(e) or "long" in str(e)
        else:
            assert song.duration_s > 0


def _encoded(y: np.ndarray, sample_rate_hz: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, y, sample_rate_hz, format=fmt)
    return buffer.getvalue()


LONG_SONGS = {
    "95 s, 44.1 kHz stereo wav": lambda: wav_bytes(music_like(95.0, 44100, channels=2, seed=1), 44100),
    "70 s, 48 kHz 6-channel wav": lambda: wav_bytes(music_like(70.0, 48000, channels=6, seed=2), 48000),
    "100 s, 22.05 kHz mono wav (no resampling)": lambda: wav_bytes(music_like(100.0, seed=3), 22050),
    "65 s, 32 kHz stereo ogg": lambda: _encoded(music_like(65.0, 32000, channels=2, seed=4), 32000, "OGG"),
    "50 s, 44.1 kHz stereo mp3": lambda: _encoded(music_like(50.0, 44100, channels=2, seed=5), 44100, "MP3"),
}


@pytest.mark.parametrize("name", LONG_SONGS)
def test_streamed_windows_of_a_long_song_equal_the_plain_path(name):
    data = LONG_SONGS[name]()
    song, starts, windows = audio.load_song_windows(data)
    plain = audio.load_song(data)
    # streamed decode + resampling
    np.testing.assert_allclose(song.samples, plain.samples, rtol=0, atol=SAMPLES_FULL_SCALE)
    assert song.duration_s == pytest.approx(plain.duration_s, abs=1e-6)
    assert song.original_channels == plain.original_channels
    with audio._one_blas_thread():  # the mel product's sums depend on OpenBLAS's thread count
        plain_starts, plain_windows = audio.song_windows(plain.samples)
    np.testing.assert_allclose(starts, plain_starts, rtol=0, atol=1e-9)
    np.testing.assert_allclose(windows, plain_windows, rtol=0, atol=PATHS_DB)
    # against the plain path on OpenBLAS's own threads: float rounding only
    np.testing.assert_allclose(windows, audio.song_windows(plain.samples)[1], rtol=0, atol=PATHS_DB)


def test_small_decoded_blocks_of_an_mp3_equal_one_whole_read(monkeypatch):
    # SoundFile.read in blocks of 4,096 differs from one read on this mp3 (its seek after each
    # read restarts the decoder); the streamed path reads without seeking.
    data = _encoded(music_like(40.0, 44100, channels=2), 44100, "MP3")
    monkeypatch.setattr(audio, "DECODE_BLOCK_FRAMES", 4096)
    song, _, windows = audio.load_song_windows(data)
    plain = audio.load_song(data)
    # SoundFile.read's seek changed samples by up to 0.004: far over this tolerance
    np.testing.assert_allclose(song.samples, plain.samples, rtol=0, atol=SAMPLES_FULL_SCALE)
    with audio._one_blas_thread():
        np.testing.assert_allclose(windows, audio.song_windows(plain.samples)[1], rtol=0, atol=PATHS_DB)


def _blas_threads_of_this_thread() -> list[int]:
    counts = [set_threads(1) for set_threads in audio._blas_thread_setters()]
    for set_threads, n in zip(audio._blas_thread_setters(), counts):
        set_threads(n)
    return counts


def test_a_refused_song_stops_the_decoding_thread_and_restores_blas_threads():
    blas_threads = _blas_threads_of_this_thread()
    loud = music_like(60.0, 44100) * 1e6  # far over full scale, found in the first block
    with pytest.raises(InputError, match="beyond full scale"):
        audio.load_song_windows(wav_bytes(loud, 44100, subtype="FLOAT"))
    assert not [t for t in threading.enumerate() if t.name == "decode-song"]
    assert _blas_threads_of_this_thread() == blas_threads


def test_songs_analysed_on_several_threads_at_once_get_the_same_windows():
    # A page session runs on its own thread: the one-BLAS-thread setting must hold there too,
    # and only there (the products' sums differ with OpenBLAS's thread count).
    from concurrent.futures import ThreadPoolExecutor

    songs = [wav_bytes(music_like(50.0 + 10 * i, 44100, channels=2, seed=i), 44100) for i in range(3)]
    alone = [audio.load_song_windows(data)[2] for data in songs]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda data: audio.load_song_windows(data)[2], songs * 2))
    for k, windows in enumerate(together):
        # The same computation on the same machine: equal to the bit on any CPU (a session thread
        # on OpenBLAS's own threads would sum in another order and differ by up to 2e-5 dB).
        np.testing.assert_array_equal(windows, alone[k % 3])


# --- lengths come from decoding, not from a header that can lie ------------------------------------

def _header_s(data: bytes) -> float:
    with sf.SoundFile(io.BytesIO(data)) as f:
        return f.frames / f.samplerate


@pytest.mark.parametrize("load", [audio.load_song, lambda data: audio.load_song_windows(data)[0], _load_mono_16k])
def test_a_vbr_mp3_without_a_xing_header_is_read_to_its_real_end(load):
    from tests.hostile_files import loud_then_quiet, vbr_mp3_without_xing

    data = vbr_mp3_without_xing(loud_then_quiet(60.0, 5.0))
    assert _header_s(data) < 20  # libsndfile's guess from the first (loud) frame; it read no further
    assert load(data).duration_s == pytest.approx(60.0, abs=0.1)


def test_a_vbr_mp3_without_a_xing_header_cut_in_half_is_read_to_the_cut():
    from tests.hostile_files import loud_then_quiet, vbr_mp3_without_xing

    data = vbr_mp3_without_xing(loud_then_quiet(60.0, 5.0))
    half = data[:len(data) // 2]  # its sound stops near the middle of its bytes, not of its time
    song = audio.load_song_windows(half)[0]
    # Read as far as the cut, but for the last block (mpg123 reports the cut as a read error)
    assert audio.DECODE_BLOCK_FRAMES / 44100 < song.duration_s < 60.0
    assert song.duration_s == audio.load_song(half).duration_s


def test_a_vbr_mp3_whose_header_claims_more_than_the_limit_is_read_to_its_real_end():
    from tests.hostile_files import quiet_then_loud, vbr_mp3_without_xing

    data = vbr_mp3_without_xing(quiet_then_loud(300.0, 3.0), 22050)
    assert _header_s(data) > audio.MAX_DURATION_S + 1  # a guess from the first (silent) frame
    song, starts_s, features = audio.load_song_windows(data)
    assert song.duration_s == pytest.approx(300.0, abs=0.1) and starts_s[-1] == pytest.approx(300.0 - 30, abs=0.1)


@pytest.mark.parametrize("make", ["flac_of_unknown_length", "wav_with_data_size_0"])
def test_a_header_without_a_length_gives_the_decoded_length(make):
    from tests import hostile_files

    y = music_like(40.0, 22050, seed=6)
    data = getattr(hostile_files, make)(y, 22050)
    assert _header_s(data) == 0 or _header_s(data) > 1e9  # unknown (FLAC: libsndfile's SF_COUNT_MAX)
    plain = audio.load_song(data)
    assert plain.duration_s == pytest.approx(40.0, abs=1e-6)
    np.testing.assert_allclose(plain.samples, audio.load_song(wav_bytes(y, 22050)).samples, atol=1e-4)
    song, starts_s, _ = audio.load_song_windows(data)
    assert song.duration_s == plain.duration_s
    np.testing.assert_allclose(starts_s, audio.load_song_windows(wav_bytes(y, 22050))[1], rtol=0, atol=1e-9)


@pytest.mark.parametrize("claimed_s", [10.0, 120.0])
def test_a_flac_whose_header_gives_another_length_is_read_to_its_frames_end(claimed_s):
    from tests.hostile_files import flac_claiming

    y = music_like(40.0, 22050, seed=8)
    data = flac_claiming(y, 22050, claimed_s)
    assert _header_s(data) == claimed_s
    for song in (audio.load_song(data), audio.load_song_windows(data)[0]):
        assert song.duration_s == pytest.approx(40.0, abs=1e-6)


def test_a_flac_of_unknown_length_over_the_limit_is_refused_without_decoding_it_all(monkeypatch):
    from tests.hostile_files import flac_of_unknown_length

    data = flac_of_unknown_length(np.tile(music_like(60.0, 4000), 20), 4000)  # 20 min
    read, read_block = [], audio._read_block
    monkeypatch.setattr(audio, "_read_block", lambda f, n: read.append(n) or read_block(f, n))
    with pytest.raises(InputError, match="longer than the limit of 15 minutes"):
        audio.load_song_windows(data)
    assert sum(read) <= (audio.MAX_DURATION_S + 1) * 4000 + audio.DECODE_BLOCK_FRAMES


def test_the_soundfile_internals_core_audio_reads_through_are_still_there():
    """core/audio.py calls libsndfile's sf_readf_float itself (SoundFile.read's seek changes mp3
    samples); after a soundfile upgrade without these, every song would fail: this names why."""
    import soundfile as sf

    assert callable(sf._snd.sf_readf_float) and callable(sf._snd.sf_error) and hasattr(sf._ffi, "cast")
    with sf.SoundFile(io.BytesIO(wav_bytes(music_like(1.0), 22050))) as f:
        assert f._file is not None



FFMPEG_SONGS = {
    "m4a (AAC in MP4)": ("ipod", "aac", 44100),
    "bare AAC (ADTS)": ("adts", "aac", 44100),
    "WebM with Opus": ("webm", "libopus", 48000),
    "Ogg Opus": ("ogg", "libopus", 48000),
}


@pytest.mark.parametrize("name", FFMPEG_SONGS)
def test_songs_in_the_containers_of_phones_and_browsers_decode_like_the_others(name):
    from tests.hostile_files import ffmpeg_encoded

    container, codec, rate = FFMPEG_SONGS[name]
    y = music_like(12.0, rate, seed=21)
    song = audio.load_mono(ffmpeg_encoded(y, rate, container, codec), 16000)
    reference = audio.load_mono(wav_bytes(y, rate), 16000)
    assert song.duration_s == pytest.approx(12.0, abs=0.05) and song.original_channels == 2
    # A lossy codec: the same music within its noise, not the same samples. Compare the spectra
    # (a codec's delay of a few ms does not move them); a wrong rate or channel layout would.
    def spectrum(x):
        return np.abs(np.fft.rfft(x[: 16000 * 10]))

    r = np.corrcoef(spectrum(song.samples), spectrum(reference.samples))[0, 1]
    assert r > 0.95, r


def test_a_microphone_recording_needs_a_few_seconds_of_music():
    assert audio.recording_too_short(audio.MIN_RECORDING_S) is None
    message = str(audio.recording_too_short(3.2))
    assert "only 3.2 s long" in message and f"at least {audio.MIN_RECORDING_S:.0f} s" in message
