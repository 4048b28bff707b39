"""What reaches W&B, read back from the offline run folders themselves (there is no server here): a
fit's whole config, metrics and checkpoints, a test's confusion matrix, and the report's table,
numbers and plots. `wandb sync` uploads exactly these records."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import struct
import sys
import time
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2

from avdisentangle.cli import main
from avdisentangle.evaluation.run_plan import default_strength
from avdisentangle.evaluation.tables import RUN_COLUMNS
from avdisentangle.lightning_cli import run_lightning
from tests.helpers import FEATURE_ARGS, REPO, fit_args, model, trainer

BLOCK, HEADER = 32768, 7  # the LevelDB log layout of a `.wandb` file: 32 KiB blocks, 7-byte chunk headers
FULL, FIRST, LAST = 1, 2, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every record of a `.wandb` file (W&B 0.31 has no Python reader: its writer is the Go core)."""
    data = path.read_bytes()
    assert len(data) < HEADER or data[:4] == b":W&B"
    found, position, pending = [], HEADER, b""
    while position + HEADER <= len(data):
        if BLOCK - position % BLOCK < HEADER:  # a block's tail too short for a header is padding
            position += BLOCK - position % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        if position + HEADER + length > len(data):  # still being written
            break
        chunk, position = data[position + HEADER : position + HEADER + length], position + HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            found.append(wandb_internal_pb2.Record.FromString(pending))
    return found


def finished_records(path: Path, patience_s: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """The records of a finished run: W&B's core process may still be writing them when `finish` returns,
    and a finished run's last record is its exit."""
    deadline = time.monotonic() + patience_s
    while not (found := records(path)) or found[-1].WhichOneof("record_type") != "exit":
        assert time.monotonic() < deadline, f"{path} has no exit record"
        time.sleep(0.2)
    return found


class OfflineRun:
    """One `offline-run-*` folder: its config and summary (the last value of every key) as nested dicts,
    its artifacts and its job type."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.records = finished_records(next(folder.glob("*.wandb")))
        self.config, self.summary = {}, {}
        for record in self.records:
            kind = record.WhichOneof("record_type")
            if kind in ("run", "config"):
                merge(self.config, (record.run.config if kind == "run" else record.config).update)
            elif kind == "summary":
                merge(self.summary, record.summary.update)
        self.artifacts = [r.artifact for r in self.records if r.WhichOneof("record_type") == "artifact"]
        self.job_type = next(r.run.job_type for r in self.records if r.WhichOneof("record_type") == "run")

    def media(self, key: str) -> Path:
        """The file a logged table or image was written to, inside the run's `files/` folder."""
        return self.folder / "files" / self.summary[key]["path"]


def merge(tree: dict, items) -> None:
    for item in items:
        *parents, leaf = [item.key] if item.key else list(item.nested_key)
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = json.loads(item.value_json)


def offline_runs(logs: Path) -> list[OfflineRun]:
    return [OfflineRun(folder) for folder in sorted((logs / "wandb").glob("offline-run-*"))]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One folder (and feature cache) for the fit, its test and the report."""
    return tmp_path_factory.mktemp("wandb")


@pytest.fixture(scope="module")
def fit_and_test(tiny_corpus, workdir, single_thread) -> tuple[OfflineRun, OfflineRun]:
    """The offline W&B runs of a tiny HSIC `fit` (leakage probe on) and of `test` on its best checkpoint."""
    import wandb

    quick = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    best = workdir / "checkpoints" / "best-epoch=00.ckpt"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)
        patch.setattr(sys, "argv", ["avdisentangle"])
        patch.setenv("WANDB_DATA_DIR", str(workdir / "wandb-data"))  # artifact staging, not the user's home
        for command, extra in (("fit", quick), ("test", [f"--ckpt_path={best}"])):
            try:
                run_lightning(fit_args(tiny_corpus, workdir, *extra, strategy="hsic", command=command)[3:])
            finally:
                wandb.finish()  # as the process's exit would
    fit, test = sorted(offline_runs(workdir / "logs"), key=lambda run: "test/loss" in run.summary)
    return fit, test


def test_a_fit_run_holds_the_whole_config_and_every_metric(fit_and_test):
    fit, _ = fit_and_test
    (hsic,) = [c for c in fit.config["trainer"]["callbacks"] if c["class_path"].endswith(".HSICStrategy")]
    file_weight = default_strength(REPO / "experiments/configs/strategy/hsic.yaml")  # schedule: a default
    assert hsic["init_args"]["weight"] == file_weight and hsic["init_args"]["schedule"] == "dann"
    assert fit.config["seed_everything"] == 0 and fit.config["trainer"]["max_epochs"] == 1
    assert fit.config["wandb_records"] == {"confusion_matrix": True, "checkpoints": True}
    for key in ("train/loss", "val/emotion/uar", "val/hsic/hsic", "trainer/global_step"):
        assert key in fit.summary, key
    # The end-of-fit leakage probe's numbers are metrics of the same run.
    leakage = {key: fit.summary[key] for key in ("leakage/speaker_from_emotion", "leakage/floor")}
    tradeoff = fit.summary["val/emotion/uar"] - (leakage["leakage/speaker_from_emotion"] - leakage["leakage/floor"])
    assert fit.summary["leakage/tradeoff"] == pytest.approx(tradeoff, abs=1e-6)


def test_the_best_and_last_checkpoints_are_model_artifacts_offline(fit_and_test, workdir):
    fit, _ = fit_and_test
    run_id = fit.folder.name.rsplit("-", 1)[1]
    logged = {json.loads(a.metadata)["original_filename"]: a for a in fit.artifacts if a.type == "model"}
    assert list(logged) == ["best-epoch=00.ckpt", "last.ckpt"]  # last logged last: W&B's "latest" is the newest
    assert "best" in logged["best-epoch=00.ckpt"].aliases and list(logged["last.ckpt"].aliases) == ["latest"]
    for name, artifact in logged.items():
        assert artifact.name == f"model-{run_id}" and artifact.finalize
        (entry,) = artifact.manifest.contents
        data = (workdir / "checkpoints" / name).read_bytes()
        assert entry.path == "model.ckpt" and entry.size == len(data)
        assert entry.digest == base64.b64encode(hashlib.md5(data).digest()).decode()
        assert Path(entry.local_path).read_bytes() == data  # the staged copy `wandb sync` uploads
        assert Path(entry.local_path).is_relative_to(workdir / "wandb-data")


@pytest.mark.parametrize("switched_on", [True, False])
def test_the_checkpoints_setting_switches_the_artifacts(switched_on, tmp_path, monkeypatch, single_thread):
    import wandb
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import WandbLogger

    from avdisentangle.wandb_records import WandbRecords
    from tests.helpers import TinyAVData

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    saving = ModelCheckpoint(dirpath=tmp_path / "checkpoints", monitor="val/loss")
    callbacks = [WandbRecords(checkpoints=switched_on), saving]
    try:
        trainer(callbacks, logger=logger, enable_checkpointing=True, max_epochs=1).fit(model(), TinyAVData())
    finally:
        wandb.finish()
    (run,) = offline_runs(tmp_path)
    logged = [a for a in run.artifacts if a.type == "model"]
    assert "val/loss" in run.summary and Path(saving.best_model_path).is_file()
    assert [set(a.aliases) for a in logged] == ([{"best", "latest"}] if switched_on else [])


def test_a_test_run_holds_the_confusion_matrix_chart_and_picture(fit_and_test):
    _, test = fit_and_test
    chart = test.config["_wandb"]["visualize"]["test/emotion/confusion_matrix"]["panel_config"]
    assert chart["panelDefId"] == "wandb/confusion_matrix/v1"
    table = json.loads(test.media("test/emotion/confusion_matrix_table").read_text())
    assert table["columns"] == ["Actual", "Predicted", "nPredictions"]
    counts: dict[str, dict[str, float]] = {}
    for actual, predicted, n in table["data"]:
        counts.setdefault(actual, {})[predicted] = n
    assert sum(map(sum, (row.values() for row in counts.values()))) > 0
    for name, row in counts.items():  # the chart's counts are the ones the recall metrics came from
        logged = test.summary[f"test/emotion/recall/{name}"]
        recall = row[name] / sum(row.values()) if sum(row.values()) else math.nan
        assert (math.isnan(recall) and math.isnan(float(logged))) or recall == pytest.approx(logged, abs=1e-6)
    assert test.media("test/emotion/confusion_matrix_image").read_bytes()[:4] == b"\x89PNG"


def test_an_offline_report_logs_its_table_numbers_and_plots(tiny_corpus, workdir, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_DIR", str(workdir / "report-logs"))  # by default logs/, where fits write theirs
    monkeypatch.setenv("WANDB_DATA_DIR", str(workdir / "wandb-data"))
    monkeypatch.setattr(sys, "argv", ["avdisentangle"])
    fit = ["--data.corpus=cremad", f"--data.root={tiny_corpus}", f"--data.cache_dir={workdir / 'cache'}"]
    fit += ["--data.prepare_workers=0", "--data.batch_size=8", "--trainer.max_epochs=1", *FEATURE_ARGS]
    report = ["report", "--profile=quick", "--strategies=[none]", "--seeds=1", "--folds=2", "--jobs=1"]
    report += [f"--output={workdir / 'results'}", "--name=tiny", f"--fit_args=[{','.join(fit)}]"]
    assert main(report) == 0
    (run,) = offline_runs(workdir / "report-logs")
    assert run.job_type == "report"
    assert f"wandb sync {run.folder}" in capsys.readouterr().out
    with (workdir / "results" / "tiny" / "results.csv").open() as handle:
        closed, *folds = csv.DictReader(handle)  # the closed-set run, then a run per speaker fold
    table = json.loads(run.media("results").read_text())
    assert table["columns"] == list(RUN_COLUMNS)
    cells = [dict(zip(table["columns"], cells)) for cells in table["data"]]
    assert [(r["split"], r["fold"]) for r in cells] == [("closed_set", None), ("unseen", 0), ("unseen", 1)]
    assert cells[0]["emotion_uar"] == pytest.approx(float(closed["emotion_uar"]), abs=1e-4)
    assert run.summary["closed_set/none/emotion_uar"] == pytest.approx(float(closed["emotion_uar"]), abs=1e-4)
    assert run.summary["closed_set/none/n"] == 1 and run.summary["unseen/none/n"] == 2
    unseen = sum(float(fold["unseen_speaker_emotion_uar"]) for fold in folds) / 2
    assert run.summary["unseen/none/unseen_speaker_emotion_uar"] == pytest.approx(unseen, abs=1e-4)
    for plot in ("embeddings", "confusion", "training"):
        assert run.media(plot).read_bytes()[:4] == b"\x89PNG", plot
