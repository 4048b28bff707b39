"""Corpora of one modality, as distributed: RAVDESS `03-*.wav` alone, CREMA-D `AudioWAV/` or `AudioMP3/`
alone, a manifest without a video column, and videos alone. The data layer reads, caches and trains on
the modalities a run uses (`--data.features.modalities`, linked into the model), and refuses a clip that
lacks one of them with its reason."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avdisentangle.cli import main
from avdisentangle.data.contact_sheet import CAPTION, GAP, HEADER, MIN_TILE, NO_FACE, contact_sheet
from avdisentangle.data.corpora import read_corpus
from avdisentangle.data.corpora.loose import read_loose_files
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.records import CorpusError
from avdisentangle.errors import UserError
from tests.conftest import TINY_FEATURES
from tests.generated_layouts import SIX_ACTORS, UNSHARED, data_args, run_args, six_actor_layouts
from tests.helpers import REPO


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF0000")  # not empty: readers only look at names and sizes
    return path


# --- readers: which files a run of each modality needs ------------------------------------------


def test_audio_only_layouts_list_their_audio_and_no_video(tmp_path):
    cremad, ravdess = tmp_path / "cremad", tmp_path / "ravdess"
    touch(cremad / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    touch(cremad / "AudioMP3" / "1001_DFA_ANG_XX.mp3")  # both shipped: the WAV is preferred
    touch(cremad / "AudioMP3" / "1001_DFA_SAD_XX.mp3")
    touch(ravdess / "Actor_01" / "03-01-05-02-01-01-01.wav")
    touch(ravdess / "Actor_01" / "01-01-04-01-01-01-01.mp4")  # an audio-video file: its track serves as audio
    listing = read_corpus("cremad", cremad, modalities=("audio",))
    assert [(c.audio_path.relative_to(cremad).as_posix(), c.video_path) for c in listing.clips] == [
        ("AudioWAV/1001_DFA_ANG_XX.wav", None),
        ("AudioMP3/1001_DFA_SAD_XX.mp3", None),
    ]
    listing = read_corpus("ravdess", ravdess, modalities=("audio",))
    assert [(c.audio_path.name, c.video_path, c.emotion) for c in listing.clips] == [
        ("01-01-04-01-01-01-01.mp4", None, "sad"),
        ("03-01-05-02-01-01-01.wav", None, "anger"),
    ]
    assert listing.refused == []


def test_a_run_of_both_modalities_on_an_audio_only_corpus_says_which_setting_reads_it(tmp_path):
    touch(tmp_path / "cremad" / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    touch(tmp_path / "ravdess" / "Actor_01" / "03-01-05-02-01-01-01.wav")
    hint = "an audio-only corpus\\? set --data.features.modalities=audio"
    with pytest.raises(CorpusError, match=f"no VideoFlash folder .*{hint}"):
        read_corpus("cremad", tmp_path / "cremad")
    with pytest.raises(CorpusError, match=f"1 files refused, e.g. .*: missing video file: .*; {hint}"):
        read_corpus("ravdess", tmp_path / "ravdess")


def test_a_clip_lacking_a_modality_the_run_reads_is_still_refused_with_its_reason(tmp_path):
    root = tmp_path / "ravdess"
    touch(root / "Actor_01" / "03-01-05-02-01-01-01.wav")
    touch(root / "Actor_01" / "02-01-05-02-01-01-01.mp4")
    touch(root / "Actor_01" / "02-01-04-01-01-01-01.mp4")  # video-only: no audio for an audio run
    touch(root / "Actor_01" / "03-01-03-01-01-01-01.wav")  # audio-only: no video for a video run
    audio = read_corpus("ravdess", root, modalities=("audio",))
    assert [c.clip_id for c in audio.clips] == ["01-03-01-01-01-01", "01-05-02-01-01-01"]
    assert [(r.item, r.kind) for r in audio.refused] == [("Actor_01/02-01-04-01-01-01-01.mp4", "missing audio file")]
    video = read_corpus("ravdess", root, modalities=("video",))
    assert [(c.clip_id, c.audio_path) for c in video.clips] == [
        ("01-04-01-01-01-01", None),
        ("01-05-02-01-01-01", None),
    ]
    assert [(r.item, r.kind) for r in video.refused] == [("Actor_01/03-01-03-01-01-01-01.wav", "missing video file")]


def test_manifests_need_the_file_columns_of_the_run_only(tmp_path):
    touch(tmp_path / "a.wav")
    touch(tmp_path / "b.wav")
    no_video = tmp_path / "audio.csv"
    no_video.write_text("clip_id,audio,speaker,emotion\na,a.wav,s1,ang\nb,b.wav,s2,hap\n")
    empty_video = tmp_path / "empty.csv"
    empty_video.write_text("clip_id,audio,video,speaker,emotion\na,a.wav,,s1,ang\nb,b.wav,,s2,hap\n")
    for manifest in (no_video, empty_video):
        listing = read_corpus("manifest", manifest, modalities=("audio",))
        assert [(c.clip_id, c.audio_path.name, c.video_path, c.extras) for c in listing.clips] == [
            ("a", "a.wav", None, {}),
            ("b", "b.wav", None, {}),
        ]
    with pytest.raises(CorpusError, match="lacks column\\(s\\) video; .*an audio-only corpus"):
        read_corpus("manifest", no_video)
    with pytest.raises(CorpusError, match="missing video file: its video field is empty.*an audio-only corpus"):
        read_corpus("manifest", empty_video)
    with pytest.raises(CorpusError, match="lacks column\\(s\\) video; found clip_id, audio, speaker, emotion$"):
        read_corpus("manifest", no_video, modalities=("video",))


def test_predicting_on_loose_audio_files(tmp_path):
    touch(tmp_path / "a.wav")
    touch(tmp_path / "b.mp3")
    touch(tmp_path / "c.mp4")  # a video alone: its own track is the audio
    listing = read_loose_files([tmp_path], modalities=("audio",))
    assert [(Path(c.clip_id).name, c.audio_path.name, c.video_path) for c in listing.clips] == [
        ("a", "a.wav", None),
        ("b", "b.mp3", None),
        ("c", "c.mp4", None),
    ]
    both = read_loose_files([tmp_path])
    assert [Path(c.clip_id).name for c in both.clips] == ["c"]
    assert sorted(r.reason for r in both.refused) == ["no video file with the same name beside it"] * 2


def test_modalities_are_validated_and_spelled_one_way():
    assert FeatureConfig(modalities="video, audio").modalities == "audio,video"
    assert FeatureConfig(modalities="audio").modality_names == ("audio",)
    assert FeatureConfig(modalities="audio").fingerprint() != FeatureConfig().fingerprint()
    with pytest.raises(UserError, match="modalities must be"):
        FeatureConfig(modalities="text")


# --- generated corpora: prepare, train, probe, report, predict, export -----------------------------


def audio_only_copies(cremad: Path, ravdess: Path, base: Path) -> dict[str, Path]:
    """The six-actor corpora with their audio alone, as distributed: CREMA-D AudioWAV/, CREMA-D AudioMP3/,
    RAVDESS 03-*.wav, and a manifest with no video column."""
    roots = {name: base / name for name in ("cremad_wav", "cremad_mp3", "ravdess_wav")}
    if not (base / "done").exists():
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(cremad / "AudioWAV", roots["cremad_wav"] / "AudioWAV")
        (roots["cremad_mp3"] / "AudioMP3").mkdir(parents=True)
        for wav in sorted((cremad / "AudioWAV").glob("*.wav")):
            audio, rate = sf.read(wav)
            sf.write(roots["cremad_mp3"] / "AudioMP3" / f"{wav.stem}.mp3", audio, rate, format="MP3")
        for wav in sorted(ravdess.glob("Actor_*/03-*.wav")):
            (roots["ravdess_wav"] / wav.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(wav, roots["ravdess_wav"] / wav.parent.name / wav.name)
        with (base / "manifest.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["clip_id", "audio", "speaker", "emotion"])
            for wav in sorted((cremad / "AudioWAV").glob("*.wav")):
                actor, _, emotion, _ = wav.stem.split("_")
                writer.writerow([wav.stem, str(wav), actor, emotion])
        (base / "done").touch()
    return {**roots, "manifest": base / "manifest.csv"}


@pytest.fixture(scope="module")
def audio_roots(tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "six_actors"
    cremad, ravdess = six_actor_layouts(base)
    return audio_only_copies(cremad, ravdess, base / "audio_only")


CORPUS_OF = {"cremad_wav": "cremad", "cremad_mp3": "cremad", "ravdess_wav": "ravdess", "manifest": "manifest"}
AUDIO = "--data.features.modalities=audio"


@pytest.mark.parametrize("layout", list(CORPUS_OF))
def test_an_audio_only_corpus_is_cached_without_video(layout, audio_roots, tmp_path):
    datamodule = AVDataModule(
        corpus=CORPUS_OF[layout],
        root=str(audio_roots[layout]),
        cache_dir=str(tmp_path),
        features=FeatureConfig(**{**TINY_FEATURES.__dict__, "modalities": "audio"}),
        prepare_workers=0,
        progress=False,
    ).ready()
    cache = datamodule.cache
    clips = SIX_ACTORS.num_speakers * (SIX_ACTORS.clips_per_speaker + (len(UNSHARED) if layout == "ravdess_wav" else 0))
    assert len(cache.clips) == cache.audio.shape[0] == clips and cache.video is None
    assert sorted(p.name for p in cache.path.iterdir()) == ["audio.npy", "clips.csv", "meta.json", "refused.csv"]
    assert json.loads((cache.path / "meta.json").read_text())["features"]["modalities"] == "audio"
    assert {row["video_path"] for row in cache.clips} == {""} and {row["face_found"] for row in cache.clips} == {""}
    assert float(np.abs(cache.audio[:, :, 10:-10].astype(np.float32) - cache.audio.mean()).max()) > 10  # real audio
    assert set(datamodule.train_dataloader().__iter__().__next__()) == {"audio", "emotion", "speaker", "index"}


def test_audio_only_ravdess_trains_probes_predicts_and_exports(audio_roots, tmp_path, capsys, single_thread):
    root = audio_roots["ravdess_wav"]
    strategies = [f"--config={REPO / 'experiments/configs/strategy' / name}" for name in ("grl.yaml", "hsic.yaml")]
    fit = run_args("fit", "ravdess", root, tmp_path / "cache", tmp_path, AUDIO, "--trainer.max_epochs=2")
    fit[2:2] = strategies  # after the base config, before the checkpoint folder the strategy files also set
    assert main(fit) == 0
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    data = data_args("ravdess", root, tmp_path / "cache")
    probe = ["probe", *[a for a in data if a.startswith("--data.")], AUDIO, f"--ckpt_path={checkpoint}"]
    assert main(probe) == 0
    assert "speaker from z_emotion" in capsys.readouterr().out
    predict = run_args("predict", "ravdess", root, tmp_path / "cache", tmp_path, AUDIO, f"--ckpt_path={checkpoint}")
    predict += [f"--data.predict_paths=[{root / 'Actor_01'}]", f"--prediction_writer.output_dir={tmp_path / 'out'}"]
    assert main(predict) == 0
    with (tmp_path / "out" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == SIX_ACTORS.clips_per_speaker + len(UNSHARED)
    assert main(["export", f"--ckpt_path={checkpoint}", "--format=torchscript"]) == 0
    printed = capsys.readouterr().out
    assert "inputs audio float32 (batch, 1, " in printed and "video" not in printed


def test_audio_only_report_in_both_protocols(audio_roots, tmp_path, single_thread):
    args = ["report", "--profile=quick", "--jobs=1", f"--output={tmp_path}"]
    cremad = [*data_args("cremad", audio_roots["cremad_wav"], tmp_path / "cache"), AUDIO]
    closed = [*args, "--name=closed", "--strategies=none", "--seeds=1", "--folds=2"]
    assert main([*closed, f"--fit_args=[{','.join(cremad)}]"]) == 0
    with (tmp_path / "closed" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["strategy"], r["split"]) for r in rows] == [("none", "closed_set"), *[("none", "unseen")] * 2]
    assert float(rows[0]["probe_speaker_from_emotion_mlp"]) >= 0 and float(rows[1]["unseen_speaker_emotion_uar"]) >= 0
    assert not (tmp_path / "closed" / "faces.png").exists()  # no video, no contact sheet
    ravdess = [*data_args("ravdess", audio_roots["ravdess_wav"], tmp_path / "cache"), AUDIO]
    protocol = [*args, "--name=protocol", "--protocol=speaker_folds", "--strategies=none"]
    assert main([*protocol, f"--fit_args=[{','.join(ravdess)}]"]) == 0
    assert "| none | 6 | " in (tmp_path / "protocol" / "summary.md").read_text()


def test_a_video_only_corpus_trains_on_faces_alone(tmp_path_factory, tmp_path, single_thread):
    cremad, _ = six_actor_layouts(tmp_path_factory.getbasetemp() / "six_actors")
    root = tmp_path / "video_only"
    shutil.copytree(cremad / "VideoFlash", root / "VideoFlash")
    fit = run_args("fit", "cremad", root, tmp_path / "cache", tmp_path, "--data.features.modalities=video")
    assert main(fit) == 0
    (cache,) = (tmp_path / "cache").glob("cremad-*")
    files = ["clips.csv", "faces.png", "meta.json", "refused.csv", "video.npy"]
    assert sorted(p.name for p in cache.iterdir()) == files
    clips = SIX_ACTORS.num_speakers * SIX_ACTORS.clips_per_speaker
    assert len(list(csv.DictReader((cache / "clips.csv").open()))) == clips


# --- the contact sheet -----------------------------------------------------------------------------


def test_the_contact_sheet_shows_every_speaker_and_frames_clips_without_a_face_in_red():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (12, 4, 1, 32, 32), dtype=np.uint8)
    rows = [
        {"speaker": f"s{i // 4}", "emotion": "anger", "face_found": "0" if i == 5 else "1"} for i in range(12)
    ]
    sheet = contact_sheet(video, rows)
    row_height = MIN_TILE + 2 * GAP + CAPTION  # 32 px crops are shown at 64
    assert sheet.shape[0] == HEADER + 3 * row_height  # one row per speaker
    red_rows = np.flatnonzero(np.all(sheet == NO_FACE, axis=2).any(axis=1))
    second = HEADER + row_height
    assert (red_rows.min(), red_rows.max()) == (second, second + MIN_TILE + 2 * GAP - 1)  # s1's clip, framed
    rows[5]["face_found"] = "1"
    assert not np.all(contact_sheet(video, rows) == NO_FACE, axis=2).any()


def test_the_model_cannot_be_told_other_modalities_than_the_datas(capsys):
    base = f"--config={REPO / 'experiments/configs/base.yaml'}"
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", base, "--model.modalities=audio", "--print_config"])
    assert exit_info.value.code == 2
    assert 'Linked "model.modalities" must be given via "data.features.modalities"' in capsys.readouterr().err
