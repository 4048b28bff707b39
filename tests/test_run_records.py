"""What a run was can be read back from its records: the whole config in every logger, the strategy
settings in the checkpoint, a checkpoint that loads with Lightning's own call, honest per-class recall."""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from avdisentangle.errors import UserError
from avdisentangle.evaluation.run_plan import default_strength
from avdisentangle.lightning_cli import refuse_repeated_strategies, run_lightning
from avdisentangle.models import MultitaskAVModule
from avdisentangle.strategies import HSICStrategy, OrthogonalStrategy
from tests.helpers import REPO, TinyAVData, batch_of, fit_args, make_samples, model, trainer

MISMATCH = "checkpoint trained with hsic"


def assert_whole_config(config: dict) -> None:
    """The trainer settings, the seed and the strategy callback with its settings, not only model hparams."""
    assert config["seed_everything"] == 0
    assert config["trainer"]["max_epochs"] == 1 and config["trainer"]["deterministic"] is True
    (strategy,) = config["trainer"]["callbacks"]
    assert strategy["class_path"] == "avdisentangle.strategies.HSICStrategy"
    assert strategy["init_args"]["weight"] == default_strength(REPO / "experiments/configs/strategy/hsic.yaml")


def test_a_fit_logs_its_whole_config_to_wandb_and_csv(tiny_corpus, tmp_path, monkeypatch, single_thread):
    import wandb

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["avdisentangle"])
    quick = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    args = fit_args(tiny_corpus, tmp_path, *quick, "--leakage_probe.enabled=false", strategy="hsic")
    try:
        cli = run_lightning(args[3:])
        (csv_logger, wandb_logger) = cli.trainer.loggers
        # Offline W&B writes no files/config.yaml; the run's config is what `wandb sync` uploads.
        assert_whole_config(dict(wandb_logger.experiment.config))
    finally:
        wandb.finish()
    assert_whole_config(yaml.safe_load((tmp_path / csv_logger.log_dir / "hparams.yaml").read_text()))
    assert (tmp_path / csv_logger.log_dir / "config.yaml").is_file()  # still written, as Lightning does


@pytest.fixture(scope="module")
def hsic_run(tmp_path_factory):
    """A model fitted with HSIC (weight 0.03) and the path of its full trainer checkpoint."""
    torch.manual_seed(0)
    net, data = model(), TinyAVData()
    fit = trainer([HSICStrategy(weight=0.03)], max_epochs=1)
    fit.fit(net, datamodule=data)
    path = tmp_path_factory.mktemp("hsic") / "run.ckpt"
    fit.save_checkpoint(path)
    return net, data, path


def test_strategy_settings_are_in_the_checkpoint_and_a_mismatch_is_named(hsic_run, single_thread):
    _, data, path = hsic_run
    stored = torch.load(path, weights_only=True)["callbacks"]["HSICStrategy"]["settings"]
    assert stored == {"weight": 0.03, "conditional": True, "schedule": "dann", "gamma": 10.0}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer([HSICStrategy(weight=0.03)]).validate(model(), datamodule=data, ckpt_path=path, verbose=False)
    assert not [w for w in caught if str(w.message).startswith(MISMATCH)]

    with pytest.warns(UserWarning, match=MISMATCH) as caught:
        trainer([HSICStrategy(weight=0.3, schedule="constant")]).validate(
            model(), datamodule=data, ckpt_path=path, verbose=False
        )
    (line,) = [str(w.message) for w in caught if str(w.message).startswith(MISMATCH)]
    assert line == "checkpoint trained with hsic weight=0.03, now 0.3; schedule='dann', now 'constant'"


def test_a_strategy_checkpoint_loads_with_load_from_checkpoint_and_predicts_the_same(hsic_run, single_thread):
    net, _, path = hsic_run
    with pytest.warns(UserWarning, match=r"strategies \['hsic'\] that are not configured") as caught:
        loaded = MultitaskAVModule.load_from_checkpoint(path).eval()
    assert sum("not configured" in str(w.message) for w in caught) == 1
    assert len(loaded.strategy_modules) == 0
    batch = batch_of()
    net.eval()
    with torch.no_grad():
        expected, found = net(batch), loaded(batch)
    for key in ("emotion_logits", "speaker_logits", "z_emotion", "z_identity"):
        assert torch.allclose(found[key], expected[key], atol=1e-6), key


def test_a_class_missing_from_the_test_split_reports_no_recall(single_thread):
    net = model(emotion_label_names=["ang", "hap", "sad"])
    with torch.no_grad():
        net.emotion_head.bias[2] = -1e4  # "sad" is never predicted, so UAR leaves it out entirely
    loader = DataLoader([s for s in make_samples(24) if s["emotion"] != 2], batch_size=8)
    (results,) = trainer().test(net, dataloaders=loader, verbose=False)
    assert math.isnan(results["test/emotion/recall/sad"])  # not 0.0: no clip of it was there to recall
    recalls = [results[f"test/emotion/recall/{name}"] for name in ("ang", "hap")]
    assert results["test/emotion/uar"] == pytest.approx(sum(recalls) / 2, abs=1e-6)
    assert net.test_confusion_matrix[2].sum() == 0 and net.test_confusion_matrix.sum() == 16


def test_the_command_line_refuses_a_strategy_configured_twice_in_one_line():
    refuse_repeated_strategies([HSICStrategy(), OrthogonalStrategy(), None])
    refuse_repeated_strategies(HSICStrategy())
    with pytest.raises(UserError, match="strategy 'hsic' is configured more than once"):
        refuse_repeated_strategies([HSICStrategy(), OrthogonalStrategy(), HSICStrategy(conditional=False)])
