"""The manifest reader (a CSV naming each clip's files and labels): exact records, one refusal per bad row,
errors for bad roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from avdisentangle.data.corpora.manifest import read_manifest
from avdisentangle.data.records import ClipRecord, CorpusError
from tests.corpus_files import reasons, touch

# --- manifest ------------------------------------------------------------------------------------


def write_manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_manifest_resolves_relative_paths_and_keeps_extras(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    touch(root / "clips" / "a.wav")
    touch(root / "clips" / "a.mp4")
    absolute_audio = touch(tmp_path / "elsewhere" / "b.wav")
    touch(root / "clips" / "b.mp4")
    write_manifest(
        root / "manifest.csv",
        f"clip_id,audio,video,speaker,emotion,session\n"
        f"b,{absolute_audio},clips/b.mp4,spk2,sad,2\n"
        f"a,clips/a.wav,clips/a.mp4,spk1,happy,1\n",
    )
    expected = [
        ClipRecord("a", root / "clips/a.wav", root / "clips/a.mp4", "spk1", "happy", {"session": "1"}),
        ClipRecord("b", absolute_audio, root / "clips/b.mp4", "spk2", "sad", {"session": "2"}),
    ]
    from_folder = read_manifest(root)
    assert from_folder.clips == expected and from_folder.refused == []
    assert read_manifest(root / "manifest.csv").clips == expected  # the CSV itself works too


def test_manifest_refuses_bad_rows(tmp_path: Path) -> None:
    touch(tmp_path / "a.wav")
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "empty.wav", b"")
    write_manifest(
        tmp_path / "manifest.csv",
        "clip_id,audio,video,speaker,emotion\n"
        "a,a.wav,a.mp4,s1,happy\n"
        "a,a.wav,a.mp4,s1,sad\n"
        "c,a.wav,,s1,sad\n"
        "d,gone.wav,a.mp4,s1,sad\n"
        "e,a.wav,gone.mp4,s1,sad\n"
        "f,empty.wav,a.mp4,s1,sad\n"
        "g,a.wav,a.mp4,s1\n",
    )
    listing = read_manifest(tmp_path)
    assert [clip.clip_id for clip in listing.clips] == ["a"]
    assert reasons(listing) == {
        "manifest.csv line 3": "duplicate clip_id: 'a' (first on line 2)",
        "manifest.csv line 4": "missing video file: its video field is empty (clip 'c')",
        "manifest.csv line 5": "missing audio file: gone.wav (clip 'd')",
        "manifest.csv line 6": "missing video file: gone.mp4 (clip 'e')",
        "manifest.csv line 7": "empty audio file (0 bytes): empty.wav (clip 'f')",
        "manifest.csv line 8": "wrong number of fields: 4, but the header has 5",
    }


def test_manifest_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        read_manifest(tmp_path / "nowhere.csv")
    with pytest.raises(CorpusError, match="no manifest.csv"):
        read_manifest(tmp_path)
    with pytest.raises(CorpusError, match="is empty"):
        read_manifest(write_manifest(tmp_path / "blank.csv", ""))
    with pytest.raises(CorpusError, match="lacks column.*video, emotion; found clip_id, audio, speaker, label"):
        read_manifest(write_manifest(tmp_path / "cols.csv", "clip_id,audio,speaker,label\nx,x.wav,s,happy\n"))
    with pytest.raises(CorpusError, match="header but no rows"):
        read_manifest(write_manifest(tmp_path / "header.csv", "clip_id,audio,video,speaker,emotion\n"))
    gone = write_manifest(tmp_path / "gone.csv", "clip_id,audio,video,speaker,emotion\nx,x.wav,x.mp4,s,sad\n")
    with pytest.raises(CorpusError, match="no manifest clips found.*missing audio file"):
        read_manifest(gone)
