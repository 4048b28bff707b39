"""The emotions CREMA-D and RAVDESS share, and how each corpus's reader spells them.

A cross-corpus test goes through this explicit table rather than matching names by a guess at
their spelling: a test corpus's emotion reaches a checkpoint's class only when both are listed here
as the same shared emotion. RAVDESS's calm and surprise have no CREMA-D counterpart, so they are
not listed, and their clips are excluded (and counted) rather than forced into another class.
"""

from __future__ import annotations

from avdisentangle.errors import UserError

SHARED_EMOTIONS = ("anger", "disgust", "fear", "happiness", "neutral", "sadness")

#: The CREMA-D and RAVDESS readers spell the six shared emotions alike: {reader's name: shared emotion}.
READER_SPELLING = {
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "neutral": "neutral",
    "sad": "sadness",
}
#: corpus -> {the emotion name its reader gives: the shared emotion}; RAVDESS's calm and surprised are absent.
SHARED_BY_CORPUS = {"cremad": READER_SPELLING, "ravdess": READER_SPELLING}
SHARED_BY_CORPUS["synthetic"] = SHARED_BY_CORPUS["cremad"]  # written with CREMA-D's emotion codes


def shared_names(corpus: str) -> dict[str, str]:
    """{the corpus's emotion name: shared emotion}, or a UserError for a corpus the table does not cover."""
    if corpus not in SHARED_BY_CORPUS:
        raise UserError(
            f"no emotion label map for corpus {corpus!r} (maps exist for {', '.join(SHARED_BY_CORPUS)}; "
            "see avdisentangle/data/label_maps.py)"
        )
    return SHARED_BY_CORPUS[corpus]


def emotion_map(test_corpus: str, checkpoint_corpus: str, checkpoint_names: list[str]) -> dict[str, str]:
    """{test corpus emotion: checkpoint emotion} for every emotion both have under one shared name."""
    trained = shared_names(checkpoint_corpus)
    by_shared = {trained[name]: name for name in checkpoint_names if name in trained}
    return {name: by_shared[shared] for name, shared in shared_names(test_corpus).items() if shared in by_shared}
