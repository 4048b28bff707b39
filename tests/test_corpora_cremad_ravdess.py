"""Corpus readers for the released folder layouts (CREMA-D, RAVDESS) and the registry that picks one by name:
exact records, one refusal per bad input, errors for bad roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from avdisentangle.data.corpora import CORPORA, read_corpus
from avdisentangle.data.corpora.cremad import read_cremad
from avdisentangle.data.corpora.ravdess import read_ravdess
from avdisentangle.data.records import ClipRecord, CorpusError
from tests.corpus_files import reasons, touch

# --- CREMA-D -------------------------------------------------------------------------------------


@pytest.fixture
def cremad_root(tmp_path: Path) -> Path:
    root = tmp_path / "crema"
    for stem in ("1001_DFA_ANG_XX", "1091_IEO_HAP_HI"):
        touch(root / "AudioWAV" / f"{stem}.wav")
    touch(root / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    touch(root / "VideoFlash" / "1001_DFA_ANG_XX.mp4")  # .flv is preferred
    touch(root / "VideoFlash" / "1091_IEO_HAP_HI.mp4")  # other video containers are accepted
    return root


def test_cremad_reads_exact_records(cremad_root: Path) -> None:
    listing = read_cremad(cremad_root)
    assert listing.clips == [
        ClipRecord(
            clip_id="1001_DFA_ANG_XX",
            audio_path=cremad_root / "AudioWAV/1001_DFA_ANG_XX.wav",
            video_path=cremad_root / "VideoFlash/1001_DFA_ANG_XX.flv",
            speaker="1001",
            emotion="anger",
            extras={"sentence": "DFA", "level": "XX"},
        ),
        ClipRecord(
            clip_id="1091_IEO_HAP_HI",
            audio_path=cremad_root / "AudioWAV/1091_IEO_HAP_HI.wav",
            video_path=cremad_root / "VideoFlash/1091_IEO_HAP_HI.mp4",
            speaker="1091",
            emotion="happy",
            extras={"sentence": "IEO", "level": "HI"},
        ),
    ]
    assert listing.refused == []


def test_cremad_refuses_each_bad_file_with_its_reason(cremad_root: Path) -> None:
    audio, video = cremad_root / "AudioWAV", cremad_root / "VideoFlash"
    touch(audio / ".DS_Store")  # not media: skipped silently
    touch(audio / "README.txt")
    touch(audio / "1001_DFA_ANG.wav")  # three fields
    touch(audio / "1002_DFA_XYZ_XX.wav")  # unknown emotion
    touch(audio / "1002_ABC_SAD_XX.wav")  # unknown sentence
    touch(audio / "10a3_DFA_SAD_XX.wav")  # bad actor
    touch(audio / "1004_DFA_SAD_ZZ.wav")  # unknown level
    touch(audio / "1005_TIE_NEU_XX.wav")  # no video
    touch(video / "1006_TIE_FEA_LO.flv")  # no audio
    touch(audio / "1007_TIE_DIS_MD.wav", b"")  # empty audio
    touch(video / "1007_TIE_DIS_MD.flv")
    touch(audio / "1008_TIE_SAD_MD.wav")
    touch(video / "1008_TIE_SAD_MD.flv", b"")  # empty video
    touch(audio / "1009_TIE_SAD_MD.mp4")  # video in the audio folder

    listing = read_cremad(cremad_root)

    assert [clip.clip_id for clip in listing.clips] == ["1001_DFA_ANG_XX", "1091_IEO_HAP_HI"]
    got = reasons(listing)
    assert set(got) == {
        "AudioWAV/1001_DFA_ANG.wav",
        "AudioWAV/1002_DFA_XYZ_XX.wav",
        "AudioWAV/1002_ABC_SAD_XX.wav",
        "AudioWAV/10a3_DFA_SAD_XX.wav",
        "AudioWAV/1004_DFA_SAD_ZZ.wav",
        "AudioWAV/1005_TIE_NEU_XX.wav",
        "VideoFlash/1006_TIE_FEA_LO.flv",
        "AudioWAV/1007_TIE_DIS_MD.wav",
        "VideoFlash/1008_TIE_SAD_MD.flv",
        "AudioWAV/1009_TIE_SAD_MD.mp4",
    }
    assert "does not parse" in got["AudioWAV/1001_DFA_ANG.wav"] and "got 3" in got["AudioWAV/1001_DFA_ANG.wav"]
    assert "unknown emotion code 'XYZ'" in got["AudioWAV/1002_DFA_XYZ_XX.wav"]
    assert "ANG" in got["AudioWAV/1002_DFA_XYZ_XX.wav"]
    assert "unknown sentence code 'ABC'" in got["AudioWAV/1002_ABC_SAD_XX.wav"]
    assert "actor id '10a3'" in got["AudioWAV/10a3_DFA_SAD_XX.wav"]
    assert "unknown level 'ZZ'" in got["AudioWAV/1004_DFA_SAD_ZZ.wav"]
    assert got["AudioWAV/1005_TIE_NEU_XX.wav"] == "missing video file: VideoFlash/1005_TIE_NEU_XX.flv"
    assert got["VideoFlash/1006_TIE_FEA_LO.flv"] == "missing audio file: AudioWAV/1006_TIE_FEA_LO.wav"
    assert got["AudioWAV/1007_TIE_DIS_MD.wav"] == "empty audio file (0 bytes)"
    assert got["VideoFlash/1008_TIE_SAD_MD.flv"] == "empty video file (0 bytes)"
    assert "AudioWAV/" in got["AudioWAV/1009_TIE_SAD_MD.mp4"]


def test_cremad_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        read_cremad(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="not a folder"):
        read_cremad(touch(tmp_path / "file.wav"))
    (tmp_path / "only_video" / "VideoFlash").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no AudioWAV or AudioMP3 folder .*a video-only corpus"):
        read_cremad(tmp_path / "only_video")
    (tmp_path / "bare").mkdir()
    with pytest.raises(CorpusError, match="no AudioWAV or AudioMP3 and no VideoFlash folder"):
        read_cremad(tmp_path / "bare")
    touch(tmp_path / "unpaired" / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    (tmp_path / "unpaired" / "VideoFlash").mkdir()
    with pytest.raises(CorpusError, match="no cremad clips found.*missing video file"):
        read_cremad(tmp_path / "unpaired")


# --- RAVDESS -------------------------------------------------------------------------------------


@pytest.fixture
def ravdess_root(tmp_path: Path) -> Path:
    root = tmp_path / "ravdess"
    actor1, actor2 = root / "Actor_01", root / "Actor_02"
    # speech, angry strong: 02 video-only + 03 audio-only (the 01 copy is redundant)
    touch(actor1 / "01-01-05-02-01-01-01.mp4")
    touch(actor1 / "02-01-05-02-01-01-01.mp4")
    touch(actor1 / "03-01-05-02-01-01-01.wav")
    # speech, neutral: only 01 audio-video, so its audio track serves as audio
    touch(actor1 / "01-01-01-01-02-02-01.mp4")
    # speech, surprised: 01 video with a 03 wav
    touch(actor2 / "01-01-08-01-01-01-02.mp4")
    touch(actor2 / "03-01-08-01-01-01-02.wav")
    # song, fearful
    touch(actor2 / "02-02-06-01-01-02-02.mp4")
    touch(actor2 / "03-02-06-01-01-02-02.wav")
    touch(root / "notes.txt")  # not media: skipped silently
    return root


def test_ravdess_pairs_modalities_for_speech(ravdess_root: Path) -> None:
    a1, a2 = ravdess_root / "Actor_01", ravdess_root / "Actor_02"
    listing = read_ravdess(ravdess_root)
    assert listing.clips == [
        ClipRecord(
            clip_id="01-01-01-02-02-01",
            audio_path=a1 / "01-01-01-01-02-02-01.mp4",
            video_path=a1 / "01-01-01-01-02-02-01.mp4",
            speaker="01",
            emotion="neutral",
            extras={"vocal_channel": "speech", "intensity": "normal", "statement": "02", "repetition": "02"},
        ),
        ClipRecord(
            clip_id="01-05-02-01-01-01",
            audio_path=a1 / "03-01-05-02-01-01-01.wav",
            video_path=a1 / "02-01-05-02-01-01-01.mp4",
            speaker="01",
            emotion="anger",
            extras={"vocal_channel": "speech", "intensity": "strong", "statement": "01", "repetition": "01"},
        ),
        ClipRecord(
            clip_id="01-08-01-01-01-02",
            audio_path=a2 / "03-01-08-01-01-01-02.wav",
            video_path=a2 / "01-01-08-01-01-01-02.mp4",
            speaker="02",
            emotion="surprise",
            extras={"vocal_channel": "speech", "intensity": "normal", "statement": "01", "repetition": "01"},
        ),
    ]
    assert listing.refused == []


def test_ravdess_selects_vocal_channels(ravdess_root: Path) -> None:
    song = read_ravdess(ravdess_root, vocal_channels=("song",))
    assert [(clip.clip_id, clip.emotion, clip.extras["vocal_channel"]) for clip in song.clips] == [
        ("02-06-01-01-02-02", "fear", "song")
    ]
    both = read_ravdess(ravdess_root, vocal_channels=["speech", "song"])
    assert len(both.clips) == 4
    for bad in (("speech", "opera"), (), "shout"):
        with pytest.raises(ValueError, match="vocal_channels"):
            read_ravdess(ravdess_root, vocal_channels=bad)


def test_ravdess_refuses_each_bad_file_with_its_reason(ravdess_root: Path) -> None:
    a1, a3 = ravdess_root / "Actor_01", ravdess_root / "Actor_03"
    touch(a1 / "01-01-05-02-01.mp4")  # five fields
    touch(a1 / "02-01-09-01-01-01-01.mp4")  # unknown emotion
    touch(a1 / "04-01-01-01-01-01-01.mp4")  # unknown modality
    touch(a1 / "03-01-01-01-01-01-01.mp4")  # audio-only modality as mp4
    touch(a1 / "02-01-03-01-01-01-05.mp4")  # actor 05 in Actor_01
    touch(a1 / "03-01-04-01-01-01-01.wav")  # audio, no video
    touch(a1 / "02-01-04-02-01-01-01.mp4")  # video, no audio at all
    touch(a1 / "02-01-07-01-01-01-01.mp4", b"")  # empty video
    touch(a1 / "03-01-07-01-01-01-01.wav")
    touch(a3 / "01-01-06-01-01-01-03.mp4", b"")  # empty 01 serving as audio and video
    touch(ravdess_root / "02-01-03-01-01-01-01.mp4")  # loose under the root
    touch(ravdess_root / "Audio_Song_Actors_01-24" / "Actor_04" / "03-02-03-01-01-01-04.wav")

    listing = read_ravdess(ravdess_root)

    assert [clip.clip_id for clip in listing.clips] == ["01-01-01-02-02-01", "01-05-02-01-01-01", "01-08-01-01-01-02"]
    got = reasons(listing)
    assert set(got) == {
        "Actor_01/01-01-05-02-01.mp4",
        "Actor_01/02-01-09-01-01-01-01.mp4",
        "Actor_01/04-01-01-01-01-01-01.mp4",
        "Actor_01/03-01-01-01-01-01-01.mp4",
        "Actor_01/02-01-03-01-01-01-05.mp4",
        "Actor_01/03-01-04-01-01-01-01.wav",
        "Actor_01/02-01-04-02-01-01-01.mp4",
        "Actor_01/02-01-07-01-01-01-01.mp4",
        "Actor_03/01-01-06-01-01-01-03.mp4",
        "02-01-03-01-01-01-01.mp4",
        "Audio_Song_Actors_01-24",
    }
    assert "does not parse" in got["Actor_01/01-01-05-02-01.mp4"] and "got 5" in got["Actor_01/01-01-05-02-01.mp4"]
    assert "unknown emotion code '09'" in got["Actor_01/02-01-09-01-01-01-01.mp4"]
    assert "unknown modality code '04'" in got["Actor_01/04-01-01-01-01-01-01.mp4"]
    assert "should be a .wav file" in got["Actor_01/03-01-01-01-01-01-01.mp4"]
    assert got["Actor_01/02-01-03-01-01-01-05.mp4"] == "actor field disagrees with its folder: 05 in Actor_01"
    assert got["Actor_01/03-01-04-01-01-01-01.wav"].startswith("missing video file")
    assert got["Actor_01/02-01-04-02-01-01-01.mp4"].startswith("missing audio file: no 03-01-04-02-01-01-01.wav")
    assert got["Actor_01/02-01-07-01-01-01-01.mp4"] == "empty video file (0 bytes)"
    assert got["Actor_03/01-01-06-01-01-01-03.mp4"] == "empty audio-video file (0 bytes)"
    assert "outside the Actor_NN folders" in got["02-01-03-01-01-01-01.mp4"]
    stray = got["Audio_Song_Actors_01-24"]
    assert "not an Actor_NN folder" in stray and "1 media file" in stray


def test_ravdess_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        read_ravdess(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="not a folder"):
        read_ravdess(touch(tmp_path / "file.mp4"))
    (tmp_path / "empty" / "Actor_01").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no ravdess clips found"):
        read_ravdess(tmp_path / "empty")


# --- registry ------------------------------------------------------------------------------------


def test_registry_dispatches_by_name(cremad_root: Path, ravdess_root: Path) -> None:
    assert CORPORA == ("synthetic", "cremad", "ravdess", "manifest")
    assert read_corpus("synthetic", cremad_root) == read_cremad(cremad_root)
    assert read_corpus("cremad", cremad_root) == read_cremad(cremad_root)
    assert len(read_corpus("ravdess", ravdess_root, vocal_channels=("song",)).clips) == 1


def test_registry_rejects_unknown_names_and_options(cremad_root: Path) -> None:
    unknown = "unknown corpus 'iemocap'; choose one of synthetic, cremad, ravdess, manifest"
    with pytest.raises(CorpusError, match=unknown):
        read_corpus("iemocap", cremad_root)
    misplaced = "'cremad' takes no options, not vocal_channels; vocal_channels is for ravdess"
    with pytest.raises(ValueError, match=misplaced):
        read_corpus("cremad", cremad_root, vocal_channels=("speech",))
    with pytest.raises(ValueError, match="takes only vocal_channels, not fps$"):
        read_corpus("ravdess", cremad_root, fps=25)
