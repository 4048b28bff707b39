"""Checkpoints as a kill, a full disk or a mix-up leave them (README, fault matrix): every command that opens
one answers a damaged file in one line with exit code 2, and a save cut short keeps the previous checkpoint
whole and resumable."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from avdisentangle.checkpoint_io import AtomicCheckpointIO, write_atomically
from avdisentangle.checkpoints import read_checkpoint
from avdisentangle.cli import main
from avdisentangle.errors import UserError
from tests.generated_layouts import run_args
from tests.helpers import FEATURE_ARGS

FULL_DISK = OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory, single_thread) -> Path:
    """A work folder with one epoch of a tiny model's fit: checkpoints/best-epoch=00.ckpt and last.ckpt."""
    work = tmp_path_factory.mktemp("trained")
    assert main(run_args("fit", "cremad", tiny_corpus, work / "cache", work)) == 0
    return work


def command(name: str, corpus: Path, work: Path, checkpoint: Path) -> list[str]:
    """The arguments of a command that opens `checkpoint`, on the trained run's corpus and cache."""
    cache, scratch = work / "cache", checkpoint.parent / "run"
    if name == "export":
        return ["export", f"--ckpt_path={checkpoint}", "--format=torchscript"]
    if name == "probe":
        data = [f"--data.root={corpus}", f"--data.cache_dir={cache}", "--data.prepare_workers=0", *FEATURE_ARGS]
        return ["probe", "--data.corpus=cremad", *data, "--data.progress=false", f"--ckpt_path={checkpoint}"]
    extra = {
        "fit": ["--trainer.max_epochs=2", f"--ckpt_path={checkpoint}"],
        "validate": [f"--ckpt_path={checkpoint}"],
        "test": [f"--ckpt_path={checkpoint}"],
        "predict": [f"--ckpt_path={checkpoint}", f"--prediction_writer.output_dir={scratch / 'predictions'}"],
        "label_space_from": [f"--data.label_space_from={checkpoint}", f"--ckpt_path={work / 'checkpoints/last.ckpt'}"],
    }[name]
    return run_args("test" if name == "label_space_from" else name, "cremad", corpus, cache, scratch, *extra)


def truncated(good: Path, path: Path) -> None:
    path.write_bytes(good.read_bytes()[:20_000])  # what a kill during a save leaves


def empty(good: Path, path: Path) -> None:
    path.write_bytes(b"")


def garbage(good: Path, path: Path) -> None:
    path.write_text("these are not the weights you are looking for\n" * 50)


def foreign(good: Path, path: Path) -> None:
    torch.save({"state_dict": {"layer.weight": torch.zeros(2, 2)}}, path)  # another package's checkpoint


DAMAGE = {
    truncated: "is truncated: a zip archive without its end (20000 bytes)",
    empty: "is empty (0 bytes)",
    garbage: "is not a checkpoint: neither a zip archive nor a pickle",
    foreign: "is not a checkpoint written by fit: it has no model hyperparameters",
}
COMMANDS = ("fit", "validate", "test", "predict", "probe", "export", "label_space_from")


@pytest.mark.parametrize("damage", list(DAMAGE), ids=lambda damage: damage.__name__)
@pytest.mark.parametrize("name", COMMANDS)
def test_a_damaged_checkpoint_is_one_line_for_every_command(
    name, damage, trained, tiny_corpus, tmp_path, capsys, single_thread
):
    damaged = tmp_path / "damaged.ckpt"
    damage(trained / "checkpoints" / "last.ckpt", damaged)
    assert main(command(name, tiny_corpus, trained, damaged)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and f"{damaged} {DAMAGE[damage]}" in line
    if name == "label_space_from":
        assert line.startswith("error: data.label_space_from: ")
    if name == "fit":
        assert line.endswith(f"no intact checkpoint in {tmp_path}: start again without --ckpt_path")


def test_the_traceback_of_a_damaged_checkpoint_is_there_with_debug(trained, tmp_path):
    truncated(trained / "checkpoints" / "last.ckpt", tmp_path / "damaged.ckpt")
    with pytest.raises(UserError, match="is truncated"):
        main(["export", f"--ckpt_path={tmp_path / 'damaged.ckpt'}", "--format=torchscript", "--debug"])


def test_the_reader_names_a_missing_file_and_a_folder(tmp_path):
    with pytest.raises(UserError, match=f"^no checkpoint at {tmp_path / 'missing.ckpt'}$"):
        read_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(UserError, match="is a folder, not a checkpoint file"):
        read_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_configured_model_are_named_with_both_shapes(
    trained, tiny_corpus, tmp_path, capsys, single_thread
):
    """The checkpoint says 5 speakers, the data 4: Lightning's load would be a traceback listing every key."""
    checkpoint = read_checkpoint(trained / "checkpoints" / "last.ckpt")
    width = checkpoint["state_dict"]["speaker_head.weight"].shape[1]
    checkpoint["state_dict"]["speaker_head.weight"] = torch.zeros(5, width)
    checkpoint["state_dict"]["speaker_head.bias"] = torch.zeros(5)
    checkpoint["hyper_parameters"]["num_speakers"] = 5
    torch.save(checkpoint, tmp_path / "five_speakers.ckpt")
    assert main(command("test", tiny_corpus, trained, tmp_path / "five_speakers.ckpt")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: checkpoint {tmp_path / 'five_speakers.ckpt'} does not fit the configured model: 2 weights differ in "
        f"shape: speaker_head.weight is (5, {width}) in the checkpoint, (4, {width}) in the model, speaker_head.bias "
        "is (5,) in the checkpoint, (4,) in the model; the model is sized from the data and the model settings: use "
        "those it was trained with"
    )


def copy_of_run(trained: Path, tmp_path: Path) -> Path:
    """The trained run's checkpoints in a folder of their own (the cache stays shared)."""
    shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def test_resuming_from_a_damaged_last_names_the_newest_intact_checkpoint(trained, tiny_corpus, tmp_path, capsys):
    checkpoints = copy_of_run(trained, tmp_path)
    truncated(trained / "checkpoints" / "last.ckpt", checkpoints / "last.ckpt")
    args = run_args("fit", "cremad", tiny_corpus, trained / "cache", tmp_path, "--trainer.max_epochs=2")
    assert main([*args, "--ckpt_path=last"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    best = checkpoints / "best-epoch=00.ckpt"
    assert line.startswith(f"error: cannot resume: {checkpoints / 'last.ckpt'} is truncated")
    assert line.endswith(f"the newest intact checkpoint there is {best.name} (epoch 0): resume with --ckpt_path={best}")
    assert sorted(path.name for path in checkpoints.iterdir()) == ["best-epoch=00.ckpt", "last.ckpt"]  # nothing ran


def interrupt_writes_to(name: str, monkeypatch) -> None:
    """A full disk whenever a file named `name` is about to replace the old one: after the write, before the rename."""
    replace = os.replace

    def full_disk(source, target, *args, **kwargs):
        if Path(target).name == name:
            raise FULL_DISK
        return replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)


def test_a_save_cut_short_keeps_the_previous_checkpoint_and_fit_resumes_from_it(
    trained, tiny_corpus, tmp_path, monkeypatch, single_thread
):
    checkpoints = copy_of_run(trained, tmp_path)
    before = (checkpoints / "last.ckpt").read_bytes()
    args = run_args("fit", "cremad", tiny_corpus, trained / "cache", tmp_path, "--trainer.max_epochs=2")
    with monkeypatch.context() as patch:
        interrupt_writes_to("last.ckpt", patch)
        with pytest.raises(OSError, match="No space left on device"):
            main([*args, "--ckpt_path=last"])  # epoch 1 trains, then its save of last.ckpt fails
    assert (checkpoints / "last.ckpt").read_bytes() == before
    assert read_checkpoint(checkpoints / "last.ckpt")["epoch"] == 0
    assert not [path.name for path in checkpoints.iterdir() if "partial" in path.name]
    assert main([*args, "--ckpt_path=last"]) == 0
    assert read_checkpoint(checkpoints / "last.ckpt")["epoch"] == 1


def write_half_then_fill_the_disk(handle) -> None:
    handle.write(b"PK\x03\x04" + bytes(1000))
    raise FULL_DISK


@pytest.mark.parametrize("where", ["during the write", "before the rename"])
def test_an_interrupted_write_leaves_the_old_file_whole_and_nothing_else(where, tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"hyper_parameters": {}, "state_dict": {}, "epoch": 3}, target)
    before = target.read_bytes()
    if where == "before the rename":
        interrupt_writes_to(target.name, monkeypatch)
        write = lambda handle: torch.save({"epoch": 4}, handle)  # noqa: E731
    else:
        write = write_half_then_fill_the_disk
    with pytest.raises(OSError, match="No space left on device"):
        write_atomically(target, write)
    assert target.read_bytes() == before and read_checkpoint(target)["epoch"] == 3
    assert [path.name for path in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_new_file_is_written_beside_the_old_one_and_renamed_over_it(tmp_path, monkeypatch):
    """A rename within one folder is atomic; a move from another file system is a copy into the target."""
    renames, replace = [], os.replace

    def recorded(source, target):
        renames.append((source, target))
        replace(source, target)

    monkeypatch.setattr(os, "replace", recorded)
    AtomicCheckpointIO().save_checkpoint({"hyper_parameters": {}, "state_dict": {}, "epoch": 1}, tmp_path / "a.ckpt")
    ((source, target),) = renames
    assert Path(source).parent == Path(target).parent == tmp_path and Path(target).name == "a.ckpt"
    assert AtomicCheckpointIO().load_checkpoint(tmp_path / "a.ckpt")["epoch"] == 1
