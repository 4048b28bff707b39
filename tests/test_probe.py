"""Probe embeddings are what `predict` computes: extraction goes through the module's `predict_step`
(Lightning's predict outside a fit, a direct call inside one), rows ordered by clip index."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avdisentangle.evaluation.probe import extract_embeddings, extract_embeddings_in_fit
from avdisentangle.models import MultitaskAVModule
from tests.helpers import make_samples, model, trainer

CLIPS, BATCH = 20, 6


@pytest.fixture
def net():
    torch.manual_seed(0)
    return model()


def shuffled_loader() -> DataLoader:
    """Clips in a seeded random order, so that ordering by clip index is visible."""
    return DataLoader(make_samples(CLIPS), batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(1))


def spy_on_predict_step():
    """Counts calls of the module's own `predict_step`, which still runs."""
    return mock.patch.object(
        MultitaskAVModule, "predict_step", autospec=True, side_effect=MultitaskAVModule.predict_step
    )


@pytest.mark.filterwarnings("ignore:.*sampler has shuffling enabled")
def test_probe_embeddings_are_predict_outputs_ordered_by_clip(net, single_thread):
    with spy_on_predict_step() as step:
        embeddings = extract_embeddings(net, shuffled_loader())
    assert step.call_count == -(-CLIPS // BATCH)  # one call per batch: no extraction of its own
    assert net.training  # the model is handed back in the mode it came in

    predictions = trainer().predict(net, DataLoader(make_samples(CLIPS), batch_size=BATCH))
    expected = {key: torch.cat([p[key] for p in predictions]).numpy() for key in predictions[0]}
    assert np.array_equal(embeddings.index, np.arange(CLIPS))
    for key in ("z_emotion", "z_identity"):
        np.testing.assert_allclose(embeddings.__dict__[key], expected[key], atol=1e-6)
    assert np.array_equal(embeddings.emotion_pred, expected["emotion_probs"].argmax(axis=1))
    samples = make_samples(CLIPS)
    assert embeddings.emotion.tolist() == [int(s["emotion"]) for s in samples]
    assert embeddings.speaker.tolist() == [int(s["speaker"]) for s in samples]


def test_inside_a_fit_the_same_rows_come_from_predict_step(net, single_thread):
    with spy_on_predict_step() as step:
        inside = extract_embeddings_in_fit(net, shuffled_loader())
    assert step.call_count == -(-CLIPS // BATCH) and net.training
    outside = extract_embeddings(net, DataLoader(make_samples(CLIPS), batch_size=BATCH))
    for key, values in vars(outside).items():
        np.testing.assert_allclose(getattr(inside, key), values, atol=1e-6, err_msg=key)
