"""AVDataModule: closed-set, speaker-independent and speaker-fold splits, label maps, batches from the cache."""

from __future__ import annotations

import numpy as np
import pytest

from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.splits import make_splits
from tests.conftest import TINY_FEATURES, TINY_SYNTHETIC


@pytest.fixture(scope="module")
def datamodule(tiny_corpus, tmp_path_factory):
    dm = AVDataModule(
        root=str(tiny_corpus),
        synthetic=TINY_SYNTHETIC,
        features=TINY_FEATURES,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        batch_size=8,
        prepare_workers=0,
        progress=False,
    )
    dm.ready()
    return dm


def test_closed_set_split_keeps_every_speaker_everywhere_and_never_leaks(datamodule):
    splits = {name: datamodule.splits[name] for name in ("train", "val", "test")}
    assert sum(len(v) for v in splits.values()) == 48
    assert len(np.unique(np.concatenate(list(splits.values())))) == 48  # disjoint and complete
    for indices in splits.values():
        assert set(datamodule.speaker_ids[indices]) == set(range(datamodule.num_speakers))
    clip_ids = {name: {datamodule.cache.clips[i]["clip_id"] for i in indices} for name, indices in splits.items()}
    assert not clip_ids["train"] & (clip_ids["val"] | clip_ids["test"])


def test_split_is_stratified_by_emotion_within_speaker():
    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(10), 60)
    emotions = rng.integers(0, 6, size=600)
    splits = make_splits(speakers, emotions, "closed_set", 0.15, 0.15, seed=1)
    for name, share in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        for emotion in range(6):
            total = (emotions == emotion).sum()
            got = (emotions[splits[name]] == emotion).sum()
            assert abs(got - share * total) <= 10, (name, emotion, got, share * total)
    assert make_splits(speakers, emotions, "closed_set", 0.15, 0.15, seed=1)["test"].tolist() == splits["test"].tolist()
    assert make_splits(speakers, emotions, "closed_set", 0.15, 0.15, seed=2)["test"].tolist() != splits["test"].tolist()


def test_speaker_independent_split_holds_out_whole_speakers():
    speakers = np.repeat(np.arange(10), 20)
    splits = make_splits(speakers, np.zeros(200, int), "speaker_independent", 0.2, 0.2, seed=0)
    sets = [set(speakers[splits[name]]) for name in ("train", "val", "test")]
    assert all(sets) and not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    with pytest.raises(ValueError, match="at least 3 speakers"):
        make_splits(np.array([0, 0, 1, 1]), np.zeros(4, int), "speaker_independent", 0.2, 0.2, seed=0)


def test_speaker_folds_test_every_speaker_once_and_never_share_a_speaker():
    speakers = np.repeat(np.arange(10), 5)
    emotions = np.tile(np.arange(5), 10)
    tested = []
    for fold in range(4):
        splits = make_splits(speakers, emotions, "speaker_folds", 0.2, 0.15, seed=3, num_folds=4, fold=fold)
        assert np.array_equal(np.sort(np.concatenate([splits[n] for n in ("train", "val", "test")])), np.arange(50))
        sets = {name: set(speakers[splits[name]].tolist()) for name in ("train", "val", "test")}
        assert all(sets.values()) and not (
            sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"]
        )
        assert len(sets["val"]) == 2  # round(0.2 * 10)
        tested += sorted(sets["test"])
    assert sorted(tested) == list(range(10))  # every speaker held out exactly once
    first_folds = {
        tuple(make_splits(speakers, emotions, "speaker_folds", 0.2, 0.15, seed=s, fold=0)["test"]) for s in range(5)
    }
    assert len(first_folds) > 1  # the seed deals the speakers


@pytest.mark.parametrize(
    "num_folds, fold, message",
    [
        (4, 4, r"fold must be in 0\.\.3"),
        (4, -1, r"fold must be in 0\.\.3"),
        (1, 0, "num_folds must be at least 2"),
        (11, 0, r"num_folds must be in 2\.\.10"),
    ],
)
def test_bad_folds_name_the_valid_range(num_folds, fold, message):
    with pytest.raises(ValueError, match=message):
        make_splits(
            np.repeat(np.arange(10), 2),
            np.zeros(20, int),
            "speaker_folds",
            0.15,
            0.15,
            seed=0,
            num_folds=num_folds,
            fold=fold,
        )
    if num_folds <= 10:  # the number of speakers is known only when splitting
        with pytest.raises(ValueError, match=message):
            AVDataModule(split="speaker_folds", num_folds=num_folds, fold=fold)


def test_speaker_folds_through_the_datamodule(tiny_corpus, datamodule):
    tested = []
    for fold in range(4):
        dm = AVDataModule(
            root=str(tiny_corpus),
            synthetic=TINY_SYNTHETIC,
            features=TINY_FEATURES,
            cache_dir=str(datamodule.cache_root),
            split="speaker_folds",
            num_folds=4,
            fold=fold,
            prepare_workers=0,
            progress=False,
        )
        dm.ready()
        sets = [set(dm.speaker_ids[dm.splits[name]].tolist()) for name in ("train", "val", "test")]
        assert all(sets) and len(set.union(*sets)) == sum(map(len, sets)) == 4
        tested += sorted(sets[2])
    assert sorted(tested) == [0, 1, 2, 3]


def test_too_few_clips_for_closed_set_is_explained():
    with pytest.raises(ValueError, match="speaker 0 has 2 clip.*at least|fewer than 3"):
        make_splits(np.array([0, 0, 1, 1, 1, 1, 1, 1]), np.zeros(8, int), "closed_set", 0.15, 0.15, seed=0)


@pytest.mark.parametrize("clips_per_speaker", [3, 6])
def test_small_speakers_still_get_a_val_and_a_test_clip(clips_per_speaker):
    """At the default fractions, 6 clips per speaker used to leave some speaker without a val clip."""
    speakers = np.repeat(np.arange(10), clips_per_speaker)
    emotions = np.tile(np.arange(clips_per_speaker), 10)
    with pytest.warns(UserWarning, match="got one val clip"):
        splits = make_splits(speakers, emotions, "closed_set", 0.15, 0.15, seed=0)
    for name in ("train", "val", "test"):
        assert set(speakers[splits[name]].tolist()) == set(range(10)), name
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(len(speakers)))


def test_labels_and_weights_come_from_the_data(datamodule):
    assert datamodule.num_speakers == 4
    assert datamodule.emotion_names == ["anger", "disgust", "fear", "happy", "neutral", "sad"]
    weights = np.array(datamodule.emotion_class_weights)
    counts = np.bincount(datamodule.emotion_ids[datamodule.splits["train"]], minlength=6)
    assert weights.mean() == pytest.approx(1.0, abs=1e-4)
    assert np.argmax(weights) == np.argmin(counts)
    assert datamodule.video_channels == 1


def test_batches_are_aligned_tensors_with_their_labels(datamodule):
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["audio"].shape == (8, 1, *TINY_FEATURES.audio_shape)
    assert batch["video"].shape == (8, *TINY_FEATURES.video_shape)
    rows = batch["index"].numpy()
    assert (batch["emotion"].numpy() == datamodule.emotion_ids[rows]).all()
    assert (batch["speaker"].numpy() == datamodule.speaker_ids[rows]).all()
    np.testing.assert_array_equal(batch["audio"][0, 0].numpy(), datamodule.cache.audio[rows[0]].astype(np.float32))
    assert set(rows) <= set(datamodule.splits["train"])
    sizes = [len(b["index"]) for b in datamodule.val_dataloader()]
    assert sum(sizes) == len(datamodule.splits["val"])


def test_unknown_choices_name_the_valid_ones():
    with pytest.raises(ValueError, match="synthetic, cremad, ravdess, manifest"):
        AVDataModule(corpus="iemocap")
    with pytest.raises(ValueError, match="closed_set, speaker_independent, speaker_folds"):
        AVDataModule(split="random")


def test_concurrent_prepares_build_one_cache(tiny_corpus, tmp_path):
    """As under torchrun: several DataModules prepare the same corpus at once; one builds, the
    others wait and read the finished cache."""
    from concurrent.futures import ThreadPoolExecutor

    def prepare(_):
        dm = AVDataModule(
            root=str(tiny_corpus),
            synthetic=TINY_SYNTHETIC,
            features=TINY_FEATURES,
            cache_dir=str(tmp_path),
            prepare_workers=0,
            progress=False,
        )
        return dm.prepare_data()

    with ThreadPoolExecutor(3) as pool:
        summaries = list(pool.map(prepare, range(3)))
    assert [s.kept for s in summaries] == [48, 48, 48]
    assert sum(not s.from_existing_cache for s in summaries) == 1
    assert len(list(tmp_path.glob("synthetic-*"))) == 1


def test_num_workers_is_the_dataloaders_as_lightning_hints_assume(datamodule):
    """`--data.num_workers` is what Lightning's "increase num_workers" hint means; extraction has its own name."""
    loader_workers = AVDataModule(
        root=datamodule.root,
        synthetic=TINY_SYNTHETIC,
        features=TINY_FEATURES,
        cache_dir=str(datamodule.cache_root),
        prepare_workers=0,
        num_workers=2,
        progress=False,
    ).ready()
    assert loader_workers.train_dataloader().num_workers == 2
    assert datamodule.train_dataloader().num_workers == 0
    assert loader_workers.prepare_workers == 0
