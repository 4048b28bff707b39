"""Cross-corpus test: a checkpoint of one corpus scored on the other, in the checkpoint's emotion classes,
through the shipped label map; unshared emotions are excluded and counted, speakers are skipped."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from avdisentangle.cli import main
from avdisentangle.data.corpora.cremad import EMOTION_BY_CODE as CREMAD_EMOTIONS
from avdisentangle.data.corpora.ravdess import EMOTION_BY_CODE as RAVDESS_EMOTIONS
from avdisentangle.data.cross_corpus import CheckpointLabelSpace
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.features import FeatureConfig
from avdisentangle.data.label_maps import SHARED_BY_CORPUS, SHARED_EMOTIONS, emotion_map
from avdisentangle.errors import UserError
from avdisentangle.lightning_cli import data_from_args, run_lightning
from tests.conftest import TINY_FEATURES
from tests.generated_layouts import SIX_ACTORS, UNSHARED, run_args, six_actor_layouts
from tests.helpers import REPO

CLIPS = SIX_ACTORS.num_speakers * SIX_ACTORS.clips_per_speaker  # per layout, of the six shared emotions


@pytest.fixture(scope="module")
def trained(tmp_path_factory, single_thread):
    """{corpus: (its root, a checkpoint trained on it for one epoch)}, and the shared cache folder."""
    base = tmp_path_factory.getbasetemp() / "six_actors"
    roots = dict(zip(("cremad", "ravdess"), six_actor_layouts(base)))
    checkpoints = {}
    for corpus, root in roots.items():
        work = tmp_path_factory.mktemp(f"fit-{corpus}")
        assert main(run_args("fit", corpus, root, base / "cache", work)) == 0
        checkpoints[corpus] = (root, next((work / "checkpoints").glob("best*.ckpt")))
    return checkpoints, base / "cache"


def test_the_label_maps_cover_every_emotion_each_reader_names():
    assert set(SHARED_BY_CORPUS["cremad"]) == set(CREMAD_EMOTIONS.values())
    assert set(SHARED_BY_CORPUS["ravdess"]) == set(RAVDESS_EMOTIONS.values()) - set(UNSHARED.values())
    for corpus in ("cremad", "ravdess", "synthetic"):
        assert sorted(SHARED_BY_CORPUS[corpus].values()) == list(SHARED_EMOTIONS)
    cremad_names = sorted(CREMAD_EMOTIONS.values())
    assert emotion_map("ravdess", "cremad", cremad_names) == {name: name for name in cremad_names}
    assert emotion_map("ravdess", "cremad", ["anger", "sad"]) == {"anger": "anger", "sad": "sad"}
    with pytest.raises(UserError, match="no emotion label map for corpus 'manifest'"):
        emotion_map("manifest", "cremad", cremad_names)


def cross_test(trained, source: str, target: str, work):
    (checkpoints, cache), target_root = trained, trained[0][target][0]
    checkpoint = checkpoints[source][1]
    extra = (f"--data.label_space_from={checkpoint}", f"--ckpt_path={checkpoint}")
    return run_lightning(run_args("test", target, target_root, cache, work, *extra))


def test_a_cremad_checkpoint_is_scored_on_ravdess_in_its_own_classes(trained, tmp_path, capsys):
    cli = cross_test(trained, "cremad", "ravdess", tmp_path)
    printed = capsys.readouterr().out
    mapping = ", ".join(f"{name}->{name}" for name in ("anger", "disgust", "fear", "happy", "neutral", "sad"))
    assert f"(trained on cremad): {mapping}; {CLIPS} clips mapped" in printed
    assert "excluded (no class in the checkpoint): 6 calm, 6 surprise" in printed
    assert cli.datamodule.emotion_names == sorted(CREMAD_EMOTIONS.values())
    assert cli.datamodule.excluded_emotions == {"calm": 6, "surprise": 6}
    matrix = cli.model.test_confusion_matrix
    assert matrix.shape == (6, 6) and matrix.sum() == CLIPS  # the mapped clips, and only those
    assert matrix.sum(axis=1).tolist() == [SIX_ACTORS.num_speakers] * 6
    metrics = {name: float(value) for name, value in cli.trainer.callback_metrics.items()}
    assert metrics["test/emotion/wa"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert metrics["test/excluded/calm"] == metrics["test/excluded/surprise"] == 6
    assert not [name for name in metrics if "speaker" in name]  # another corpus's speakers: not scored
    assert np.isfinite(metrics["test/loss"])  # the emotion loss alone (a speaker loss over no speaker is NaN)
    with next(tmp_path.rglob("metrics.csv")).open() as handle:
        logged = list(csv.DictReader(handle))[-1]
    assert float(logged["test/excluded/calm"]) == 6 and "test/speaker/wa" not in logged


def test_a_ravdess_checkpoint_is_scored_on_cremad_with_nothing_excluded(trained, tmp_path, capsys):
    cli = cross_test(trained, "ravdess", "cremad", tmp_path)
    assert "excluded (no class in the checkpoint): none" in capsys.readouterr().out
    names = cli.datamodule.emotion_names
    assert names == sorted(RAVDESS_EMOTIONS.values()) and cli.datamodule.excluded_emotions == {}
    matrix = cli.model.test_confusion_matrix
    assert matrix.shape == (8, 8) and matrix.sum() == CLIPS
    assert matrix[names.index("calm")].sum() == matrix[names.index("surprise")].sum() == 0


def test_label_space_from_refuses_fit_other_features_and_non_checkpoints(trained, tmp_path):
    (checkpoints, cache), checkpoint = trained, trained[0]["cremad"][1]
    other = FeatureConfig(**{**vars(TINY_FEATURES), "n_mels": 16})
    with pytest.raises(UserError, match=r"n_mels=16 \(checkpoint: 32\)"):
        CheckpointLabelSpace.load(str(checkpoint), other)
    with pytest.raises(UserError, match="^data.label_space_from: no checkpoint at "):
        CheckpointLabelSpace.load(str(tmp_path / "missing.ckpt"), TINY_FEATURES)
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="notes.ckpt is not a checkpoint: neither a zip archive nor a pickle"):
        CheckpointLabelSpace.load(str(tmp_path / "notes.ckpt"), TINY_FEATURES)
    ravdess = AVDataModule(
        corpus="ravdess",
        root=str(checkpoints["ravdess"][0]),
        cache_dir=str(cache),
        features=TINY_FEATURES,
        label_space_from=str(checkpoint),
        prepare_workers=0,
        progress=False,
    ).ready()
    assert len(ravdess.splits["train"]) == 0 and len(ravdess.splits["test"]) == CLIPS
    assert (ravdess.speaker_ids == -100).all() and ravdess.emotion_class_weights is None
    with pytest.raises(UserError, match="not fit"):
        ravdess.setup("fit")


def test_the_shipped_cross_corpus_config_keeps_the_training_features():
    configs = ["base.yaml", "data/cremad.yaml", "data/cross_corpus.yaml"]
    data = data_from_args([f"--config={REPO / 'experiments/configs' / name}" for name in configs])
    assert (data.corpus, data.label_space_from) == ("ravdess", "/path/to/CREMA-D.ckpt")
    assert data.features.window_s == 2.5  # CREMA-D's, which the checkpoint was trained on
