"""Train/val/test splits over clip indices, fixed by a seed.

`closed_set`: person ID is a closed-set task, so every speaker appears in all three splits; within
each speaker, clips are ordered by emotion and sampled systematically, which stratifies the split
by emotion as well as by speaker with exact proportions.
`speaker_independent`: whole speakers are held out, for emotion generalisation to new people.
`speaker_folds`: k-fold cross-validation over speakers: the seed permutes the speakers and deals them
into `num_folds` folds; fold `fold` is the test set, val speakers come from the other folds (the next
fold's first), the rest train. Over fold = 0..k-1 every speaker is tested exactly once, so a
speaker-independent result is averaged over all people rather than one draw of test speakers.
`protocol_folds`: the same, with the folds of the corpus's published protocol (`protocols.py`: from
the actor ids alone, not the seed), so results compare with papers; val speakers are picked from the
training folds evenly spaced in id order, so the whole split is fixed by the corpus.
"""

from __future__ import annotations

import warnings

import numpy as np

from avdisentangle.errors import UserError

SPLIT_KINDS = ("closed_set", "speaker_independent", "speaker_folds", "protocol_folds")
SPLIT_NAMES = ("train", "val", "test")


def make_splits(
    speakers: np.ndarray,
    emotions: np.ndarray,
    kind: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    num_folds: int = 4,
    fold: int = 0,
    fold_of: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Sorted index arrays per split name; raises ValueError when the data cannot be split so.
    `num_folds` and `fold` apply to `speaker_folds` only, where they replace `test_fraction`;
    `protocol_folds` takes `fold` and the protocol's {actor: fold} (`fold_of`) instead."""
    if kind not in SPLIT_KINDS:
        raise UserError(f"split must be one of {SPLIT_KINDS}, got {kind!r}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError(f"need 0 < val_fraction, test_fraction and their sum < 1; got {val_fraction}, {test_fraction}")
    rng = np.random.default_rng(seed)
    if kind == "closed_set":
        return closed_set_split(speakers, emotions, val_fraction, test_fraction, rng)
    if kind == "speaker_folds":
        return speaker_folds_split(speakers, val_fraction, num_folds, fold, rng)
    if kind == "protocol_folds":
        return protocol_folds_split(speakers, val_fraction, fold_of, fold)
    return speaker_independent_split(speakers, val_fraction, test_fraction, rng)


MIN_CLOSED_SET_CLIPS = 3  # one each for train, val and test


def closed_set_split(speakers, emotions, val_fraction, test_fraction, rng) -> dict[str, np.ndarray]:
    """Every speaker in every split. A speaker whose share of val or test rounds to no clip gets one
    clip there anyway (with a warning that says how many did): a small corpus still splits."""
    names, counts = np.unique(speakers, return_counts=True)
    if counts.min() < MIN_CLOSED_SET_CLIPS:
        small = names[counts < MIN_CLOSED_SET_CLIPS]
        raise UserError(
            f"closed-set split: speaker {small[0]} has {counts.min()} clip(s) ({len(small)} speaker(s) have fewer than "
            f"{MIN_CLOSED_SET_CLIPS}); each needs one for train, val and test: drop them from the corpus, or use "
            "--data.split=speaker_independent"
        )
    assignment = np.full(len(speakers), "train", dtype=object)
    topped_up = {"val": 0, "test": 0}
    for speaker in names:
        members = order_by_emotion(np.flatnonzero(speakers == speaker), emotions, rng)
        test, topped = at_least_one(systematic_sample(len(members), test_fraction, rng.random()), rng, leave=2)
        topped_up["test"] += topped
        assignment[members[test]] = "test"
        rest = members[~test]
        val, topped = at_least_one(systematic_sample(len(rest), val_fraction / (1 - test_fraction), rng.random()), rng)
        topped_up["val"] += topped
        assignment[rest[val]] = "val"
    if any(topped_up.values()):
        warnings.warn(
            f"closed-set split: val_fraction={val_fraction} and test_fraction={test_fraction} give some speakers no "
            f"clip there; {topped_up['val']} speaker(s) got one val clip, {topped_up['test']} one test clip",
            stacklevel=3,
        )
    return {name: np.flatnonzero(assignment == name) for name in SPLIT_NAMES}


def at_least_one(mask: np.ndarray, rng: np.random.Generator, leave: int = 1) -> tuple[np.ndarray, bool]:
    """`mask` with one random item set when it picked none (and whether it did), always leaving at
    least `leave` items unset (room for the splits still to be drawn from the rest)."""
    topped = not mask.any()
    if topped:
        mask[rng.integers(len(mask))] = True
    while mask.sum() > len(mask) - leave:
        mask[np.flatnonzero(mask)[-1]] = False
    return mask, topped


def speaker_independent_split(speakers, val_fraction, test_fraction, rng) -> dict[str, np.ndarray]:
    unique = rng.permutation(np.unique(speakers))
    if len(unique) < 3:
        raise UserError(f"speaker-independent split needs at least 3 speakers, found {len(unique)}")
    n_test = max(1, round(test_fraction * len(unique)))
    n_val = max(1, round(val_fraction * len(unique)))
    if n_test + n_val >= len(unique):
        n_test, n_val = 1, 1
    held = {"test": unique[:n_test], "val": unique[n_test : n_test + n_val], "train": unique[n_test + n_val :]}
    return {name: np.flatnonzero(np.isin(speakers, held[name])) for name in SPLIT_NAMES}


def check_folds(num_folds: int, fold: int) -> None:
    """ValueError naming the valid range unless 2 <= num_folds and 0 <= fold < num_folds."""
    if num_folds < 2:
        raise UserError(f"num_folds must be at least 2, got {num_folds}")
    if not 0 <= fold < num_folds:
        raise UserError(f"fold must be in 0..{num_folds - 1} (0 <= fold < num_folds={num_folds}), got {fold}")


def speaker_folds_split(speakers, val_fraction, num_folds, fold, rng) -> dict[str, np.ndarray]:
    check_folds(num_folds, fold)
    unique = rng.permutation(np.unique(speakers))
    if num_folds > len(unique):
        raise UserError(f"num_folds must be in 2..{len(unique)} (the number of speakers), got {num_folds}")
    folds = [unique[i::num_folds] for i in range(num_folds)]
    rest = np.concatenate([folds[(fold + step) % num_folds] for step in range(1, num_folds)])
    if len(rest) < 2:
        raise UserError(f"speaker folds: {len(unique)} speakers in {num_folds} folds leave no speaker to train on")
    n_val = min(max(1, round(val_fraction * len(unique))), len(rest) - 1)
    held = {"test": folds[fold], "val": rest[:n_val], "train": rest[n_val:]}
    return {name: np.flatnonzero(np.isin(speakers, held[name])) for name in SPLIT_NAMES}


def protocol_folds_split(speakers, val_fraction, fold_of: dict[str, int], fold: int) -> dict[str, np.ndarray]:
    """Test: the actors of fold `fold`; val: round(val_fraction x actors) of the other folds' actors,
    evenly spaced in id order (so spread over the training folds); the rest train. No seed."""
    check_folds(max(fold_of.values()) + 1, fold)
    actors = sorted(fold_of)
    rest = [actor for actor in actors if fold_of[actor] != fold]
    if len(rest) < 2:
        raise UserError(f"protocol folds: {len(actors)} actors in folds leave no actor to train on")
    n_val = min(max(1, round(val_fraction * len(actors))), len(rest) - 1)
    val = [rest[i] for i in np.arange(n_val) * len(rest) // n_val]
    held = {
        "test": [actor for actor in actors if fold_of[actor] == fold],
        "val": val,
        "train": [actor for actor in rest if actor not in val],
    }
    splits = {name: np.flatnonzero(np.isin(speakers, held[name])) for name in SPLIT_NAMES}
    if not len(splits["test"]):
        raise UserError(f"protocol folds: no clip of fold {fold}'s actors ({', '.join(held['test'])}) was kept")
    return splits


def within_speaker_holdout(
    speakers: np.ndarray, emotions: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Mask of about `fraction` of each speaker's clips, stratified by emotion (as closed_set's test
    split): a held-out part of the same speakers, for scoring a speaker probe fitted on the rest."""
    held = np.zeros(len(speakers), dtype=bool)
    for speaker in np.unique(speakers):
        members = np.flatnonzero(speakers == speaker)
        if len(members) < 2:
            continue  # its only clip stays on the fitting side
        members = order_by_emotion(members, emotions, rng)
        held[members[systematic_sample(len(members), fraction, rng.random())]] = True
    return held


def order_by_emotion(members: np.ndarray, emotions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`members` sorted by emotion, ties in random order: systematic sampling then stratifies by emotion."""
    return members[np.lexsort((rng.permutation(len(members)), emotions[members]))]


def systematic_sample(n: int, fraction: float, offset: float) -> np.ndarray:
    """Mask picking every (1/fraction)-th of n ordered items from a random offset: round(n*fraction) +-1 items,
    spread evenly over the order (so evenly over emotions when items are sorted by emotion)."""
    position = np.arange(n) * fraction + offset
    return np.floor(position + fraction) > np.floor(position)
