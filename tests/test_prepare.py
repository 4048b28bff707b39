"""`prepare`: the cache built from real layouts, its summary, bad files refused, resume after a kill."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from avdisentangle.cli import main
from avdisentangle.data.cache import FeatureCache
from avdisentangle.data.datamodule import AVDataModule
from tests.conftest import TINY_FEATURES, write_ravdess_copy
from tests.helpers import ENV, FEATURE_ARGS, prepare_command


def prepare(capsys, *args: str) -> str:
    assert main(["prepare", "--data.prepare_workers=0", "--data.progress=false", *FEATURE_ARGS, *args]) == 0
    return capsys.readouterr().out


@pytest.fixture
def damaged_cremad(tiny_corpus, tmp_path):
    """A copy of the tiny corpus with one of each kind of bad file."""
    root = tmp_path / "cremad"
    shutil.copytree(tiny_corpus, root)
    audio, video = root / "AudioWAV", root / "VideoFlash"
    wavs = sorted(audio.glob("*.wav"))
    wavs[0].write_bytes(b"")  # empty wav: refused by the reader
    wavs[1].write_bytes(wavs[1].read_bytes()[:2000])  # truncated wav: refused by the feature extractor
    (video / f"{wavs[2].stem}.flv").write_bytes(b"garbage" * 200)  # unreadable video
    (video / f"{wavs[3].stem}.flv").unlink()  # wav without its video
    shutil.copy(wavs[4], audio / "1001_XYZ_ANG_HI.wav")  # sentence code that does not parse
    return root, [wavs[0].stem, wavs[1].stem, wavs[2].stem, wavs[3].stem, "1001_XYZ_ANG_HI"]


def test_prepare_cremad_layout_summarises_kept_and_refused(capsys, damaged_cremad, tmp_path):
    root, bad = damaged_cremad
    out = prepare(capsys, "--data.corpus=cremad", f"--data.root={root}", f"--data.cache_dir={tmp_path / 'cache'}")
    assert "kept 44 clips, refused 5" in out
    for reason in ("empty", "truncated", "unreadable video", "missing video", "XYZ"):
        assert reason in out, reason
    cache = FeatureCache.open(next((tmp_path / "cache").glob("cremad-*")))
    assert len(cache.clips) == cache.audio.shape[0] == cache.video.shape[0] == 44
    assert not {clip["clip_id"] for clip in cache.clips} & set(bad)
    refused = (cache.path / "refused.csv").read_text()
    assert refused.count("\n") == 6  # header + 5 reasons
    # A second prepare finds the finished cache and only reports it.
    assert "kept 44 clips, refused 5" in prepare(
        capsys, "--data.corpus=cremad", f"--data.root={root}", f"--data.cache_dir={tmp_path / 'cache'}"
    )


def test_prepare_ravdess_layout(capsys, tiny_corpus, tmp_path):
    root = write_ravdess_copy(tiny_corpus, tmp_path / "ravdess")
    (root / "Actor_01" / "03-01-05-01-01-01-01.wav").write_bytes(b"")
    expected = len(list(root.glob("Actor_*/02-*.mp4"))) - 1
    out = prepare(capsys, "--data.corpus=ravdess", f"--data.root={root}", f"--data.cache_dir={tmp_path / 'cache'}")
    assert f"kept {expected} clips, refused 1" in out
    cache = FeatureCache.open(next((tmp_path / "cache").glob("ravdess-*")))
    assert set(cache.column("speaker")) == {"01", "02"}
    assert cache.audio.dtype == np.float16 and cache.audio.shape[1:] == TINY_FEATURES.audio_shape
    assert cache.column("face_found").tolist().count("1") == expected


def test_unusable_root_is_a_clear_error(capsys, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        AVDataModule(corpus="cremad", root=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "cache")).prepare_data()
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "VideoFlash").mkdir()
    with pytest.raises(ValueError, match="no cremad clips"):
        AVDataModule(corpus="cremad", root=str(tmp_path), cache_dir=str(tmp_path / "cache")).prepare_data()


def test_killed_prepare_resumes_to_identical_arrays(tiny_corpus, tmp_path):
    """SIGKILL a prepare after its first finished chunk; the rerun redoes nothing finished and
    produces exactly the arrays of an uninterrupted run."""
    args = prepare_command(tiny_corpus, "--data.prepare_workers=0")
    env = ENV
    killed = subprocess.Popen(
        [*args, f"--data.cache_dir={tmp_path / 'killed'}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "killed").glob("*/parts/part-*.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    parts = list((tmp_path / "killed").glob("*/parts/part-*.npz"))
    assert 1 <= len(parts) < 3, "the kill should land after the first of three chunks"
    resumed = subprocess.run(
        [*args, f"--data.cache_dir={tmp_path / 'killed'}"], env=env, capture_output=True, text=True, check=True
    )
    assert "kept 48 clips, refused 0" in resumed.stdout
    assert f"resumed: {16 * len(parts)} clips were already done, extracted {48 - 16 * len(parts)}" in resumed.stdout
    clean = subprocess.run(
        [*args, f"--data.cache_dir={tmp_path / 'clean'}"], env=env, capture_output=True, text=True, check=True
    )
    assert "kept 48 clips, refused 0" in clean.stdout
    killed_cache = FeatureCache.open(next((tmp_path / "killed").glob("cremad-*")))
    clean_cache = FeatureCache.open(next((tmp_path / "clean").glob("cremad-*")))
    np.testing.assert_array_equal(killed_cache.audio, clean_cache.audio)
    np.testing.assert_array_equal(killed_cache.video, clean_cache.video)
    assert killed_cache.clips == clean_cache.clips
    assert not (killed_cache.path / "parts").exists()
