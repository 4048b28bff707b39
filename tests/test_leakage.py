"""LeakageProbe: the speaker probe is scored on unseen clips of speakers it was fitted on, also under
speaker-held-out splits, and the trade-off subtracts only the leakage above the emotion-label floor.
Embeddings are constructed, so no model is trained."""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch

from avdisentangle.data.splits import make_splits
from avdisentangle.evaluation.leakage import (
    FLOOR,
    FLOOR_INFO_BITS,
    SPEAKER_FROM_EMOTION,
    SPEAKER_INFO_BITS,
    TRADEOFF,
    LeakageProbe,
    probe_sets,
    select_rows,
    speaker_leakage,
    tradeoff,
)
from avdisentangle.evaluation.probe import Embeddings, probe_accuracy
from avdisentangle.models import MultitaskAVModule

NUM_SPEAKERS, CLIPS, NUM_EMOTIONS = 8, 40, 6


def corpus(speaker_scale: float, seed: int = 0) -> Embeddings:
    """Clips whose emotion follows the speaker half the time; z_emotion holds the emotion (one-hot)
    plus `speaker_scale` times a fixed random direction per speaker, plus noise."""
    rng = np.random.default_rng(seed)
    speaker = np.repeat(np.arange(NUM_SPEAKERS), CLIPS)
    emotion = np.where(
        rng.random(len(speaker)) < 0.5, speaker % NUM_EMOTIONS, rng.integers(0, NUM_EMOTIONS, len(speaker))
    )
    z = np.concatenate([3.0 * np.eye(NUM_EMOTIONS)[emotion], np.zeros((len(speaker), 10))], axis=1)
    z += speaker_scale * rng.normal(size=(NUM_SPEAKERS, z.shape[1]))[speaker] + 0.3 * rng.normal(size=z.shape)
    return Embeddings(
        z_emotion=z, z_identity=z, emotion=emotion, speaker=speaker, index=np.arange(len(speaker)), emotion_pred=emotion
    )


def split(embeddings: Embeddings, kind: str) -> tuple[Embeddings, Embeddings]:
    splits = make_splits(embeddings.speaker, embeddings.emotion, kind, 0.25, 0.25, seed=0)
    return select_rows(embeddings, splits["train"]), select_rows(embeddings, splits["val"])


def test_speaker_held_out_split_still_measures_leakage_on_seen_speakers():
    train, val = split(corpus(speaker_scale=2.0), "speaker_independent")
    assert not set(val.speaker) & set(train.speaker)
    assert (
        probe_accuracy(train.z_emotion, train.speaker, val.z_emotion, val.speaker, "mlp") == 0.0
    )  # the old train->val reading
    leakage = speaker_leakage(train, val)
    assert leakage.scored_on == "held-out train clips"
    assert leakage.chance == pytest.approx(1 / len(np.unique(train.speaker)))
    assert leakage.speaker_from_emotion > 0.8 > leakage.floor > leakage.chance
    entropy = np.log2(len(np.unique(train.speaker)))  # 4 train speakers, equally frequent: 2 bits
    assert leakage.speaker_info_bits == pytest.approx(entropy, abs=0.05) and 0.1 < leakage.floor_info_bits < 0.5


def test_emotion_only_embedding_leaks_no_more_than_the_floor():
    train, val = split(corpus(speaker_scale=0.0), "speaker_independent")
    leakage = speaker_leakage(train, val)
    assert leakage.floor > leakage.chance  # speakers and emotions co-occur, so the label alone names some speakers
    assert leakage.chance < leakage.speaker_from_emotion < leakage.floor + 0.05  # what it reads, the emotion explains
    assert leakage.speaker_info_bits == pytest.approx(leakage.floor_info_bits, abs=0.1)  # in bits too
    assert tradeoff(0.7, leakage.speaker_from_emotion, leakage.floor) > 0.65  # so the trade-off barely charges it


def test_fit_and_score_clips():
    train, val = split(corpus(speaker_scale=1.0), "closed_set")
    fit, score, scored_on = probe_sets(train, val)
    assert (fit, score, scored_on) == (train, val, "val")  # closed set: train -> val as before
    train, val = split(corpus(speaker_scale=1.0), "speaker_independent")
    fit, score, _ = probe_sets(train, val, seed=1)
    assert not set(fit.index) & set(score.index) and len(fit.index) + len(score.index) == len(train.index)
    for speaker in np.unique(train.speaker):  # every train speaker on both sides, about 30% scored
        assert abs((score.speaker == speaker).sum() - 0.3 * (train.speaker == speaker).sum()) <= 1
    assert np.array_equal(probe_sets(train, val, seed=1)[1].index, score.index)  # seeded


def test_tradeoff_is_uar_minus_leakage_above_the_floor():
    assert tradeoff(0.8, 0.5, 0.3) == pytest.approx(0.6)
    assert tradeoff(0.8, 0.3, 0.3) == pytest.approx(0.8)  # leaking only what the emotion explains costs nothing


class Passthrough(torch.nn.Module):
    """A 'model' whose z_emotion is the batch's constructed embedding (its emotion part is the logits),
    read through the real module's `predict_step`."""

    predict_step = MultitaskAVModule.predict_step

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the extraction reads the device from a parameter

    def forward(self, batch):
        return {"z_emotion": batch["z"], "z_identity": batch["z"], "emotion_logits": batch["z"][:, :NUM_EMOTIONS]}


def batches(embeddings: Embeddings) -> list[dict[str, torch.Tensor]]:
    columns = {
        "z": embeddings.z_emotion.astype(np.float32),
        "emotion": embeddings.emotion,
        "speaker": embeddings.speaker,
    }
    columns["index"] = embeddings.index
    starts = range(0, len(embeddings.index), 32)
    return [
        {key: torch.from_numpy(np.ascontiguousarray(value[start : start + 32])) for key, value in columns.items()}
        for start in starts
    ]


def test_callback_logs_leakage_floor_and_the_documented_tradeoff(tmp_path, capsys):
    train, val = split(corpus(speaker_scale=2.0), "speaker_independent")
    logger = mock.MagicMock()
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(loader={"train": batches(train), "val": batches(val)}.__getitem__),
        is_global_zero=True,
        callback_metrics={"val/emotion/uar": torch.tensor(0.75)},
        loggers=[logger],
        global_step=7,
    )
    spy = mock.patch.object(Passthrough, "predict_step", autospec=True, side_effect=MultitaskAVModule.predict_step)
    with spy as predict_step:
        LeakageProbe(summary_file=str(tmp_path / "summary.json")).on_fit_end(trainer, Passthrough())
    assert predict_step.call_count == len(batches(train)) + len(batches(val))  # embeddings as `predict` makes them
    summary = json.loads((tmp_path / "summary.json").read_text())
    expected = speaker_leakage(train, val)
    assert summary[SPEAKER_FROM_EMOTION] == pytest.approx(expected.speaker_from_emotion)
    assert summary[FLOOR] == pytest.approx(expected.floor)
    assert summary[TRADEOFF] == pytest.approx(0.75 - (summary[SPEAKER_FROM_EMOTION] - summary[FLOOR]))
    assert summary[SPEAKER_INFO_BITS] == pytest.approx(expected.speaker_info_bits)
    assert summary[FLOOR_INFO_BITS] == pytest.approx(expected.floor_info_bits)
    logged = (SPEAKER_FROM_EMOTION, FLOOR, SPEAKER_INFO_BITS, FLOOR_INFO_BITS, TRADEOFF)
    logger.log_metrics.assert_called_once_with({key: summary[key] for key in logged}, step=7)
    printed = capsys.readouterr().out
    assert f"chance {expected.chance:.3f}, floor {expected.floor:.3f}" in printed and "held-out train clips" in printed
    assert f"{SPEAKER_INFO_BITS} = {expected.speaker_info_bits:.2f} (floor {expected.floor_info_bits:.2f})" in printed
