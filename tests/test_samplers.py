"""Speaker-balanced training batches (`data.speakers_per_batch`): P speakers x K clips in every batch,
each clip once per epoch where the clips allow, the same batches for the same (seed, epoch) (a resumed
run included), one-line errors for settings that cannot work, and training through the command line."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.samplers import SpeakerBalancedBatchSampler
from avdisentangle.errors import UserError
from avdisentangle.models import MultitaskAVModule
from avdisentangle.strategies import STRATEGIES
from tests import helpers
from tests.conftest import TINY_FEATURES

pytestmark = pytest.mark.usefixtures("single_thread")


def speaker_balanced(cache_dir: str, root: Path, speakers_per_batch: int | None = 2) -> AVDataModule:
    """The tiny corpus (4 speakers, 8 training clips each), read as the command line's `fit_args` read it."""
    return AVDataModule(
        corpus="cremad",
        root=str(root),
        features=TINY_FEATURES,
        cache_dir=cache_dir,
        batch_size=8,
        speakers_per_batch=speakers_per_batch,
        prepare_workers=0,
        progress=False,
    ).ready()


@pytest.fixture(scope="module")
def cache_dir(tiny_corpus, tmp_path_factory) -> str:
    folder = str(tmp_path_factory.mktemp("cache"))
    speaker_balanced(folder, tiny_corpus)
    return folder


def composition(batches: list[list[int]], speakers: np.ndarray) -> set[tuple[int, ...]]:
    """The sorted clip counts per speaker of every batch: {(4, 4)} for batches of 2 speakers x 4 clips."""
    return {tuple(sorted(Counter(speakers[batch].tolist()).values())) for batch in batches}


def epoch(sampler: SpeakerBalancedBatchSampler, number: int) -> list[list[int]]:
    sampler.set_epoch(number)
    return list(sampler)


# ------------------------------------------------------------------------------ the sampler alone
def test_balanced_speakers_give_p_speakers_of_k_clips_and_every_clip_once_per_epoch():
    speakers = np.repeat(np.arange(6), 12)  # 72 clips: 6 batches of 3 speakers x 4 clips
    sampler = SpeakerBalancedBatchSampler(speakers, batch_size=12, speakers_per_batch=3, seed=0)
    for number in range(3):
        batches = epoch(sampler, number)
        assert len(batches) == len(sampler) == 6
        assert composition(batches, speakers) == {(4, 4, 4)}
        assert sorted(position for batch in batches for position in batch) == list(range(72))


def test_unbalanced_speakers_keep_the_composition_and_repeat_clips_only_when_they_must():
    # 44 clips in groups of 4: 3, 3, 2, 2 and 1 groups; 5 batches of 2 need 10 of the 11, none twice.
    speakers = np.repeat(np.arange(5), [12, 12, 8, 8, 4])
    batches = list(SpeakerBalancedBatchSampler(speakers, batch_size=8, speakers_per_batch=2))
    positions = [position for batch in batches for position in batch]
    assert len(batches) == 5 and composition(batches, speakers) == {(4, 4)}
    assert len(set(positions)) == len(positions) == 40
    # One speaker holds most clips: the others' clips are dealt again, but no batch is short of a speaker.
    speakers = np.repeat(np.arange(3), [40, 4, 2])
    batches = list(SpeakerBalancedBatchSampler(speakers, batch_size=8, speakers_per_batch=2))
    assert len(batches) == 5 and composition(batches, speakers) == {(4, 4)}
    assert all(speakers[batch].tolist().count(0) <= 4 for batch in batches)


def test_same_seed_and_epoch_same_batches_and_any_other_differs():
    speakers = np.repeat(np.arange(6), 12)
    first, second = (SpeakerBalancedBatchSampler(speakers, 12, 3, seed=0) for _ in range(2))
    assert epoch(first, 4) == epoch(second, 4)
    assert epoch(first, 0) != epoch(first, 1)
    assert epoch(first, 0) != epoch(SpeakerBalancedBatchSampler(speakers, 12, 3, seed=1), 0)


@pytest.mark.parametrize(
    ("speakers", "batch_size", "speakers_per_batch", "message"),
    [
        (np.repeat(np.arange(4), 8), 8, 3, r"data.batch_size=8 must be a multiple of data.speakers_per_batch=3"),
        (np.repeat(np.arange(4), 8), 2, 4, r"data.batch_size=2 must be a multiple of data.speakers_per_batch=4"),
        (np.repeat(np.arange(4), 8), 8, 0, r"data.speakers_per_batch must be at least 1"),
        (np.repeat(np.arange(4), 8), 10, 5, r"data.speakers_per_batch=5 but the training split has 4 speakers"),
        (np.repeat(np.arange(4), 2), 16, 4, r"the training split has 8 clips, data.batch_size is 16"),
    ],
)
def test_settings_that_cannot_work_are_one_line_user_errors(speakers, batch_size, speakers_per_batch, message):
    with pytest.raises(UserError, match=message) as raised:
        SpeakerBalancedBatchSampler(speakers, batch_size, speakers_per_batch)
    assert "\n" not in str(raised.value)


# ------------------------------------------------------------------------------ through the DataModule
def test_the_datamodules_training_batches_are_speaker_balanced(tiny_corpus, cache_dir):
    datamodule = speaker_balanced(cache_dir, tiny_corpus)
    train = datamodule.splits["train"]
    loader = datamodule.train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == len(train) // 8
    for batch in batches:
        assert sorted(Counter(batch["speaker"].tolist()).values()) == [4, 4]
        rows = batch["index"].numpy()
        assert set(rows) <= set(train) and (batch["speaker"].numpy() == datamodule.speaker_ids[rows]).all()
    # The default is unchanged: shuffled clips, every one of them, the last batch short.
    plain = [batch["index"].tolist() for batch in speaker_balanced(cache_dir, tiny_corpus, None).train_dataloader()]
    assert len(plain) == math.ceil(len(train) / 8) and sorted(sum(plain, [])) == sorted(train.tolist())


def test_a_batch_size_that_speakers_do_not_divide_is_refused_when_the_datamodule_is_built():
    with pytest.raises(UserError, match="data.batch_size=8 must be a multiple of data.speakers_per_batch=3"):
        AVDataModule(batch_size=8, speakers_per_batch=3)


def test_ddp_is_refused_in_one_line(tiny_corpus, cache_dir):
    """Lightning shards samplers of single clips across processes, not batch samplers of our own."""
    datamodule = speaker_balanced(cache_dir, tiny_corpus)
    datamodule.trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    with pytest.raises(UserError, match="data.speakers_per_batch runs in one process; this run has 2"):
        datamodule.train_dataloader()


class BatchRecorder(L.Callback):
    """The dataset rows of every training batch, by epoch."""

    def __init__(self) -> None:
        self.rows: dict[int, list[list[int]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.rows.setdefault(trainer.current_epoch, []).append(batch["index"].tolist())


def fit(datamodule: AVDataModule, epochs: int, callbacks: list[L.Callback], ckpt_path=None, **options) -> L.Trainer:
    L.seed_everything(0, verbose=False)
    trainer = helpers.trainer(callbacks, max_epochs=epochs, **options)
    trainer.fit(MultitaskAVModule.for_data(datamodule, **helpers.SMALL), datamodule, ckpt_path=ckpt_path)
    return trainer


def test_lightning_moves_the_epoch_on_and_a_resumed_run_sees_the_same_batches(tiny_corpus, cache_dir, tmp_path):
    whole = BatchRecorder()
    fit(speaker_balanced(cache_dir, tiny_corpus), 2, [whole])
    assert whole.rows[0] != whole.rows[1]  # Lightning called set_epoch: a new order in the second epoch
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    fit(speaker_balanced(cache_dir, tiny_corpus), 1, [checkpoint], enable_checkpointing=True)
    resumed = BatchRecorder()  # a new DataModule, as a new process builds: its sampler starts at epoch 0
    fit(speaker_balanced(cache_dir, tiny_corpus), 2, [resumed], ckpt_path=tmp_path / "last.ckpt")
    assert list(resumed.rows) == [1] and resumed.rows[1] == whole.rows[1]


@pytest.mark.parametrize("strategy", [name for name, cls in STRATEGIES.items() if cls])
def test_every_strategy_trains_on_speaker_balanced_batches(tiny_corpus, cache_dir, strategy):
    trainer = fit(speaker_balanced(cache_dir, tiny_corpus), 1, [STRATEGIES[strategy]()])
    logged = trainer.logged_metrics
    assert np.isfinite(float(logged["train/loss"]))
    assert any(key.startswith(f"train/{strategy}/") for key in logged)


def test_fit_through_the_command_line_with_speaker_balanced_batches(tiny_corpus, cache_dir, tmp_path):
    args = helpers.fit_args(tiny_corpus, tmp_path, "--trainer.max_epochs=2", strategy="hsic")
    args += ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={tmp_path / 'logs'}"]
    args += ["--leakage_probe.enabled=false", f"--data.cache_dir={cache_dir}", "--data.speakers_per_batch=2"]
    result = helpers.run(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(row["train/loss"]) for row in helpers.metrics_rows(tmp_path) if row.get("train/loss")]
    assert len(losses) == 2 and all(np.isfinite(losses))
    configs = list((tmp_path / "logs").rglob("config.yaml"))
    assert configs and "speakers_per_batch: 2" in configs[0].read_text()
