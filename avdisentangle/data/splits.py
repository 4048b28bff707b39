"""Train/val/test splits over clip indices, fixed by a seed.

`closed_set`: person ID is a closed-set task, so every speaker appears in all three splits; within
each speaker, clips are ordered by emotion and sampled systematically, which stratifies the split
by emotion as well as by speaker with exact proportions.
`speaker_independent`: whole speakers are held out, for emotion generalisation to new people.
"""

from __future__ import annotations

import numpy as np

SPLIT_KINDS = ("closed_set", "speaker_independent")
SPLIT_NAMES = ("train", "val", "test")


def make_splits(
    speakers: np.ndarray, emotions: np.ndarray, kind: str, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Sorted index arrays per split name; raises ValueError when the data cannot be split so."""
    if kind not in SPLIT_KINDS:
        raise ValueError(f"split must be one of {SPLIT_KINDS}, got {kind!r}")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 < val_fraction, test_fraction and their sum < 1; got {val_fraction}, {test_fraction}")
    rng = np.random.default_rng(seed)
    if kind == "closed_set":
        return closed_set_split(speakers, emotions, val_fraction, test_fraction, rng)
    return speaker_independent_split(speakers, val_fraction, test_fraction, rng)


def closed_set_split(speakers, emotions, val_fraction, test_fraction, rng) -> dict[str, np.ndarray]:
    assignment = np.full(len(speakers), "train", dtype=object)
    for speaker in np.unique(speakers):
        members = np.flatnonzero(speakers == speaker)
        members = members[np.lexsort((rng.permutation(len(members)), emotions[members]))]
        test = systematic_sample(len(members), test_fraction, rng.random())
        assignment[members[test]] = "test"
        rest = members[~test]
        val = systematic_sample(len(rest), val_fraction / (1 - test_fraction), rng.random())
        assignment[rest[val]] = "val"
    splits = {name: np.flatnonzero(assignment == name) for name in SPLIT_NAMES}
    for name, indices in splits.items():
        lacking = sorted(set(speakers.tolist()) - set(speakers[indices].tolist()))
        if lacking:
            raise ValueError(
                f"closed-set split: speakers {lacking[:10]} have no clip in '{name}' "
                f"(too few clips per speaker for val_fraction={val_fraction}, test_fraction={test_fraction})"
            )
    return splits


def speaker_independent_split(speakers, val_fraction, test_fraction, rng) -> dict[str, np.ndarray]:
    unique = rng.permutation(np.unique(speakers))
    if len(unique) < 3:
        raise ValueError(f"speaker-independent split needs at least 3 speakers, found {len(unique)}")
    n_test = max(1, round(test_fraction * len(unique)))
    n_val = max(1, round(val_fraction * len(unique)))
    if n_test + n_val >= len(unique):
        n_test, n_val = 1, 1
    held = {"test": unique[:n_test], "val": unique[n_test : n_test + n_val], "train": unique[n_test + n_val :]}
    return {name: np.flatnonzero(np.isin(speakers, held[name])) for name in SPLIT_NAMES}


def systematic_sample(n: int, fraction: float, offset: float) -> np.ndarray:
    """Mask picking every (1/fraction)-th of n ordered items from a random offset: round(n*fraction) +-1 items,
    spread evenly over the order (so evenly over emotions when items are sorted by emotion)."""
    position = np.arange(n) * fraction + offset
    return np.floor(position + fraction) > np.floor(position)
