"""Published speaker-independent protocols: folds from actor ids alone, the shipped fold files, and
`report --protocol speaker_folds` end to end on generated corpora in both real layouts."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from avdisentangle.cli import main
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.protocols import (
    PROTOCOLS,
    assign_folds,
    corpus_folds,
    released_folds_text,
)
from avdisentangle.data.splits import make_splits
from avdisentangle.errors import UserError
from avdisentangle.evaluation.protocol_outputs import fold_statistics
from avdisentangle.evaluation.tables import protocol_table
from tests.generated_layouts import SIX_ACTORS, UNSHARED, data_args, six_actor_layouts
from tests.helpers import REPO


@pytest.fixture(scope="session")
def layouts(tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "six_actors"
    return (*six_actor_layouts(base), base / "cache")


def read_folds(text: str) -> dict[str, int]:
    rows = csv.DictReader(io.StringIO("".join(line for line in text.splitlines(True) if not line.startswith("#"))))
    return {row["actor"]: int(row["fold"]) for row in rows}


def test_shipped_fold_files_are_the_rule_over_the_released_actors():
    for corpus, name in (("cremad", "cremad_5fold.csv"), ("ravdess", "ravdess_6fold.csv")):
        assert (REPO / "experiments" / "folds" / name).read_text() == released_folds_text(PROTOCOLS[corpus])
    ravdess = read_folds((REPO / "experiments/folds/ravdess_6fold.csv").read_text())
    assert ravdess == {f"{actor:02d}": (actor - 1) // 4 for actor in range(1, 25)}  # 1-4, 5-8, ..., 21-24
    cremad = read_folds((REPO / "experiments/folds/cremad_5fold.csv").read_text())
    assert sorted(cremad) == [str(actor) for actor in range(1001, 1092)]
    assert np.bincount(list(cremad.values())).tolist() == [19, 18, 18, 18, 18]
    firsts = [min(actor for actor, f in cremad.items() if f == fold) for fold in range(5)]
    assert firsts == ["1001", "1020", "1038", "1056", "1074"]
    assert "rule: actor ids in order" in released_folds_text(PROTOCOLS["ravdess"]).splitlines()[1]


def test_folds_depend_on_actor_ids_only_not_on_refused_clips_or_the_seed(tmp_path):
    actors = [str(actor) for actor in range(1001, 1011)]
    refused = ["AudioWAV/1004_DFA_ANG_XX.wav,unreadable audio: x", "1007_IEO_SAD_HI,feature extraction failed: y"]
    (tmp_path / "refused.csv").write_text("item,reason\n" + "\n".join(refused) + "\n")

    class Cache:  # 1004 and 1007 have every clip refused: they keep their places in the folds
        path, speaker_names = tmp_path, [a for a in actors if a not in ("1004", "1007")]

    fold_of = corpus_folds("cremad", Cache)
    assert fold_of == assign_folds(actors, 5) == {a: i // 2 for i, a in enumerate(actors)}
    speakers = np.repeat(Cache.speaker_names, 3)
    splits = [
        make_splits(speakers, np.zeros(len(speakers)), "protocol_folds", 0.2, 0.15, seed, fold=1, fold_of=fold_of)
        for seed in range(4)
    ]
    assert all(all(np.array_equal(s[n], splits[0][n]) for n in s) for s in splits)
    assert set(speakers[splits[0]["test"]]) == {"1003"}  # fold 1 = 1003, 1004 (whose clips were all refused)


def test_val_speakers_are_evenly_spaced_over_the_training_folds():
    fold_of = read_folds(released_folds_text(PROTOCOLS["ravdess"]))
    speakers = np.repeat(sorted(fold_of), 2)
    splits = make_splits(speakers, np.zeros(48), "protocol_folds", 0.15, 0.15, seed=0, fold=0, fold_of=fold_of)
    held = {name: sorted(set(speakers[index])) for name, index in splits.items()}
    assert held["test"] == ["01", "02", "03", "04"]
    assert held["val"] == ["05", "10", "15", "20"]  # round(0.15 x 24) = 4: two men (odd) and two women (even)
    assert held["train"] == sorted(set(fold_of) - set(held["test"]) - set(held["val"]))


def test_corpora_without_enough_actors_or_a_protocol_are_refused(tiny_corpus, tmp_path):
    with pytest.raises(UserError, match="no published fold protocol"):
        AVDataModule(corpus="manifest", split="protocol_folds")
    with pytest.raises(UserError, match=r"fold must be in 0\.\.4"):
        AVDataModule(corpus="cremad", split="protocol_folds", fold=5)
    with pytest.raises(UserError, match="4 actor\\(s\\) for 5 folds"):
        assign_folds(["1001", "1002", "1003", "1004"], 5)
    tiny = data_args("cremad", tiny_corpus, tmp_path / "cache")  # 4 speakers for CREMA-D's 5 folds
    args = ["report", "--protocol=speaker_folds", "--strategies=none", f"--output={tmp_path}"]
    args.append(f"--fit_args=[{','.join(tiny)}]")
    assert main(args) == 2
    with pytest.raises(SystemExit):
        main([*args, "--folds=3"])  # the protocol fixes the folds


@pytest.mark.parametrize("corpus", ["cremad", "ravdess"])
def test_report_runs_every_protocol_fold_and_writes_mean_std_and_pooled_confusion(
    corpus, layouts, tmp_path, single_thread
):
    cremad, ravdess, cache = layouts
    root = cremad if corpus == "cremad" else ravdess
    args = ["report", "--protocol=speaker_folds", "--profile=quick", "--strategies", "none", "--jobs=1"]
    fit_args = data_args(corpus, root, cache)
    assert main([*args, f"--output={tmp_path}", "--name=p", f"--fit_args=[{','.join(fit_args)}]"]) == 0
    out, folds = tmp_path / "p", PROTOCOLS[corpus].num_folds
    actors = [str(1001 + i) for i in range(6)] if corpus == "cremad" else [f"{i:02d}" for i in range(1, 7)]
    assert read_folds((out / "folds.csv").read_text()) == assign_folds(actors, folds)
    assert (out / "folds.csv").read_text().startswith(f"# {PROTOCOLS[corpus].title} speaker-independent protocol")
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["strategy"], row["split"]) for row in rows] == [("none", "protocol")] * folds
    assert [int(row["fold"]) for row in rows] == list(range(folds))
    with (out / "protocol.csv").open() as handle:
        (summary,) = list(csv.DictReader(handle))
    assert summary["strategy"] == "none" and summary["folds"] == str(folds)
    for metric in ("emotion_wa", "emotion_uar", "emotion_f1"):
        values = [float(r[metric]) for r in rows]
        assert float(summary[f"{metric}_mean"]) == pytest.approx(np.mean(values), abs=1e-4)
        assert float(summary[f"{metric}_std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-4)
    with (out / "confusion_pooled.csv").open() as handle:
        matrix = [[int(v) for v in row[2:]] for row in list(csv.reader(handle))[1:]]
    clips = SIX_ACTORS.num_speakers * SIX_ACTORS.clips_per_speaker
    clips += SIX_ACTORS.num_speakers * len(UNSHARED) if corpus == "ravdess" else 0
    assert sum(map(sum, matrix)) == clips  # every clip tested exactly once over the folds
    assert (out / "confusion_pooled.png").read_bytes()[:4] == b"\x89PNG"
    summary_md = (out / "summary.md").read_text()
    assert f"| none | {folds} | " in summary_md and " ± " in summary_md and "(confusion_pooled.png)" in summary_md


def test_each_strategys_ua_change_is_paired_with_none_fold_by_fold():
    none = [0.50, 0.60, 0.70]  # folds differ in difficulty by far more than the strategy's effect
    rows = [
        {"strategy": strategy, "fold": f, "emotion_wa": u, "emotion_uar": u + change * (1 + 0.05 * f), "emotion_f1": u}
        for strategy, change in (("none", 0.0), ("grl", 0.02))
        for f, u in enumerate(none)
    ]
    stats = fold_statistics(rows)
    assert stats["none"]["delta_uar_points"] is None
    mean, low, high = stats["grl"]["delta_uar_points"]
    assert mean == pytest.approx(2.1) and 0 < low < mean < high < 4  # unpaired, the interval would span +-20 points
    assert "| grl | 3 | " in protocol_table(stats) and "+2.1 [" in protocol_table(stats)
