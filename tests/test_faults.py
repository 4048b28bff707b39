"""The fault matrix of the README, one fault at a time: what the user sees and what is kept.

Each test breaks something on purpose (a file, the cache, an option) on corpora the tests generate.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from avdisentangle.cli import main
from avdisentangle.data.audio import load_audio
from avdisentangle.data.cache import FeatureCache, PrepareSummary, build_cache, cache_dir_for
from avdisentangle.data.cache_integrity import CacheDamaged
from avdisentangle.data.clip_errors import ClipRefused
from avdisentangle.data.corpora import read_corpus, read_manifest
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.records import Refusal
from avdisentangle.errors import UserError
from tests.conftest import TINY_FEATURES

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize 61832\n"


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# ---- user errors: one line, exit code 2 ------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "--data.batch_size=0"], "batch_size must be at least 1, got 0"),
        (["prepare", "--data.features.window_s=0"], "need 0 < min_duration_s <= window_s"),
        (["prepare", "--data.corpus=cremad", "--data.root=ROOT/nowhere"], "cremad root does not exist"),
        (["fit", "--data.corpus=cremad", "--data.root=ROOT/nowhere"], "cremad root does not exist"),
        (["prepare", "--data.corpus=cremad", "--data.root=ROOT/a_file"], "cremad root is not a folder"),
        (["prepare", "--data.corpus=cremad", "--data.root=ROOT"], "no AudioWAV or AudioMP3 and no VideoFlash"),
        (["prepare", "--data.corpus=manifest", "--data.root=ROOT/no_emotion.csv"], "lacks column(s) emotion"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path, args, message):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "no_emotion.csv").write_text("clip_id,audio,video,speaker\na,a.wav,a.flv,s1\n")
    args = [arg.replace("ROOT", str(tmp_path)) for arg in args] + [f"--data.cache_dir={tmp_path / 'cache'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert last_line(err).startswith("error: ") and message in last_line(err)
    assert "Traceback" not in err
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        main([*args, "--debug"])


# ---- per-clip failures never stop prepare ----------------------------------------------------
def listing_of(root: Path):
    return read_corpus("cremad", root)


def test_any_per_clip_failure_refuses_that_clip_with_a_reason(tiny_corpus, tmp_path, monkeypatch):
    """A PermissionError (what `chmod 000` gives a non-root user) or an exception without a message
    refuses its clip; the other clips are kept."""
    import avdisentangle.data.extraction as extraction

    listing = listing_of(tiny_corpus)
    unreadable, silent = listing.clips[0].clip_id, listing.clips[1].clip_id
    extract = extraction.extract_clip

    def failing_extract(clip, config, detector):
        if clip.clip_id == unreadable:
            raise PermissionError(13, "Permission denied", str(clip.audio_path))
        if clip.clip_id == silent:
            raise RuntimeError()
        return extract(clip, config, detector)

    monkeypatch.setattr(extraction, "extract_clip", failing_extract)
    cache_dir = tmp_path / "cache"
    summary = build_cache(listing, TINY_FEATURES, cache_dir, corpus="cremad", num_workers=0, progress=False)
    reasons = {refusal.item: refusal.reason for refusal in summary.refused}
    assert summary.kept == len(listing.clips) - 2
    assert reasons[unreadable] == "feature extraction failed: Permission denied"
    assert reasons[silent] == "feature extraction failed: RuntimeError (raised without a message)"
    assert len(FeatureCache.open(cache_dir).clips) == summary.kept


def test_a_video_without_an_audio_track_is_refused_with_a_reason(tiny_corpus):
    """Used as its own audio source, a silent video once gave 'NoBackendError: ' and nothing more."""
    video = next((tiny_corpus / "VideoFlash").glob("*.flv"))
    with pytest.raises(ClipRefused) as refused:
        load_audio(video, 16000)
    assert str(refused.value).startswith("unreadable audio: ")
    assert len(str(refused.value)) > len("unreadable audio: NoBackendError: ")


# ---- the feature cache is checked, not trusted -----------------------------------------------
@pytest.fixture(scope="module")
def finished_cache(tiny_corpus, tmp_path_factory):
    """A built cache of the tiny corpus; tests damage copies of it."""
    datamodule = AVDataModule(
        corpus="cremad",
        root=str(tiny_corpus),
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        features=TINY_FEATURES,
        prepare_workers=0,
        progress=False,
    )
    datamodule.prepare_data()
    return datamodule


def damaged_copy(finished_cache: AVDataModule, tmp_path: Path, damage) -> AVDataModule:
    """A DataModule over a copy of the cache, with `damage(cache folder)` applied to the copy."""
    copy = tmp_path / "cache" / finished_cache.cache_location().name
    shutil.copytree(finished_cache.cache_location(), copy)
    damage(copy)
    return AVDataModule(
        corpus="cremad",
        root=finished_cache.root,
        cache_dir=str(tmp_path / "cache"),
        features=TINY_FEATURES,
        prepare_workers=0,
        progress=False,
    )


def drop_rows(folder: Path) -> None:
    lines = (folder / "clips.csv").read_text().splitlines(keepends=True)
    (folder / "clips.csv").write_text("".join(lines[:-10]))


def append_rows(folder: Path) -> None:
    lines = (folder / "clips.csv").read_text().splitlines(keepends=True)
    (folder / "clips.csv").write_text("".join(lines + lines[1:4]))


def truncate_audio(folder: Path) -> None:
    with (folder / "audio.npy").open("r+b") as handle:
        handle.truncate((folder / "audio.npy").stat().st_size // 2)


@pytest.mark.parametrize(
    "damage, message",
    [
        (drop_rows, "clips.csv has 38 rows, but meta.json and the arrays hold 48 clips"),
        (append_rows, "clips.csv has 51 rows, but meta.json and the arrays hold 48 clips"),
        (truncate_audio, "audio.npy is truncated"),
    ],
)
def test_a_damaged_cache_is_named_and_rebuilt(finished_cache, tmp_path, damage, message):
    datamodule = damaged_copy(finished_cache, tmp_path, damage)
    with pytest.raises(CacheDamaged, match=message):
        FeatureCache.open(tmp_path / "cache" / finished_cache.cache_location().name)
    with pytest.warns(UserWarning, match="damaged.*rebuilding"):
        datamodule.prepare_data()
    cache = datamodule.ready().cache
    assert len(cache.clips) == cache.audio.shape[0] == cache.video.shape[0] == 48
    np.testing.assert_array_equal(cache.audio, FeatureCache.open(finished_cache.cache_location()).audio)


def test_a_source_file_rewritten_at_the_same_size_gets_a_new_cache(tiny_corpus, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    before = cache_dir_for(tmp_path, "cremad", root, listing_of(root), TINY_FEATURES)
    wav = sorted((root / "AudioWAV").glob("*.wav"))[0]
    data = bytearray(wav.read_bytes())
    data[-100:] = bytes(100)  # silence the last samples: same size, other content
    stat = wav.stat()
    wav.write_bytes(bytes(data))
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # even on a coarse clock
    assert wav.stat().st_size == stat.st_size
    assert cache_dir_for(tmp_path, "cremad", root, listing_of(root), TINY_FEATURES) != before


# ---- manifests ---------------------------------------------------------------------------------
def write_manifest(tiny_corpus: Path, path: Path, emotions: list[str]) -> Path:
    wavs = sorted((tiny_corpus / "AudioWAV").glob("*.wav"))
    rows = [
        f"{wav.stem},{wav},{tiny_corpus / 'VideoFlash' / (wav.stem + '.flv')},{wav.stem.split('_')[0]},{emotion}"
        for wav, emotion in zip(wavs, emotions)
    ]
    path.write_text("clip_id,audio,video,speaker,emotion\n" + "\n".join(rows) + "\n")
    return path


def test_manifest_root_may_be_the_csv_itself(tiny_corpus, tmp_path):
    csv_path = write_manifest(tiny_corpus, tmp_path / "my_corpus.csv", ["anger", "sad"] * 6)
    datamodule = AVDataModule(corpus="manifest", root=str(csv_path), cache_dir=str(tmp_path / "cache"))
    assert datamodule.corpus_root() == csv_path
    assert len(read_corpus("manifest", datamodule.corpus_root()).clips) == 12


def test_manifest_labels_ignore_case_and_spaces_and_rare_ones_are_flagged(tiny_corpus, tmp_path):
    emotions = ["ANG", "ang ", " Ang", "sad", "SAD", "Sad"] * 6 + ["angr"]
    path = write_manifest(tiny_corpus, tmp_path / "manifest.csv", emotions)
    with pytest.warns(UserWarning, match=r"emotion 'angr' labels only 1 clip.*a typo of 'ang'\?"):
        listing = read_manifest(path)
    assert sorted({clip.emotion for clip in listing.clips}) == ["ang", "angr", "sad"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_manifest(write_manifest(tiny_corpus, tmp_path / "balanced.csv", ["ang", "sad"] * 18))


# ---- a CREMA-D clone without Git LFS ----------------------------------------------------------
def write_pointer_tree(root: Path, stems: list[str]) -> Path:
    for folder, suffix in (("AudioWAV", ".wav"), ("VideoFlash", ".flv")):
        (root / folder).mkdir(parents=True)
        for number, stem in enumerate(stems):
            (root / folder / f"{stem}{suffix}").write_bytes(LFS_POINTER % f"{number:064x}".encode())
    return root


def test_git_lfs_pointers_are_named_once_and_prepare_fails(capsys, tmp_path):
    stems = [f"10{actor:02d}_{sentence}_ANG_XX" for actor in range(1, 4) for sentence in ("DFA", "IEO")]
    root = write_pointer_tree(tmp_path / "CREMA-D", stems)
    code = main(["prepare", "--data.corpus=cremad", f"--data.root={root}", f"--data.cache_dir={tmp_path / 'cache'}"])
    captured = capsys.readouterr()
    assert code == 2
    assert (
        last_line(captured.err)
        == f"error: 12 of 12 files are Git LFS pointers, not media: run `git lfs pull` in {root}"
    )
    assert "RIFF" not in captured.out + captured.err
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("cremad-*"))


def test_some_pointers_among_real_clips_are_counted_in_the_summary(tiny_corpus, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, root)
    for wav in sorted((root / "AudioWAV").glob("*.wav"))[:3]:
        wav.write_bytes(LFS_POINTER % (b"0" * 64))
    listing = listing_of(root)
    assert len(listing.clips) == 45
    summary = PrepareSummary(cache_dir=tmp_path, kept=45, refused=listing.refused, faces_missing=0)
    lines = summary.lines()
    assert "  3 x Git LFS pointer, not media: " in "\n".join(lines)
    assert "3 files are Git LFS pointers, not media: run `git lfs pull` in the corpus folder" in lines


def test_summary_groups_refusals_by_kind_with_a_few_examples(tmp_path):
    refused = [Refusal(f"AudioWAV/{n}.wav", "audio is not a RIFF/WAVE file") for n in range(500)]
    refused += [Refusal("clip_a", "truncated audio: its header declares 10 data bytes, the file holds 4")]
    lines = PrepareSummary(cache_dir=tmp_path, kept=7, refused=refused, faces_missing=0).lines()
    assert lines[0] == "kept 7 clips, refused 501"
    assert lines[1] == (
        "  500 x audio is not a RIFF/WAVE file: AudioWAV/0.wav; AudioWAV/1.wav; AudioWAV/2.wav; and 497 more"
    )
    assert lines[2] == "  1 x truncated audio: clip_a (its header declares 10 data bytes, the file holds 4)"
    assert len(lines) < 10


def test_prepare_that_keeps_nothing_exits_non_zero(capsys, tiny_corpus, tmp_path):
    root = tmp_path / "corpus"
    (root / "AudioWAV").mkdir(parents=True)
    shutil.copytree(tiny_corpus / "VideoFlash", root / "VideoFlash")
    for video in sorted((root / "VideoFlash").glob("*.flv"))[:4]:
        (root / "AudioWAV" / f"{video.stem}.wav").write_bytes(b"RIFF" + bytes(400))  # not a WAVE file
    code = main(
        [
            "prepare",
            "--data.corpus=cremad",
            f"--data.root={root}",
            f"--data.cache_dir={tmp_path / 'cache'}",
            "--data.prepare_workers=0",
            "--data.progress=false",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert "4 x audio is not a RIFF/WAVE file" in captured.out
    assert last_line(captured.err).startswith("error: no clip was kept")
