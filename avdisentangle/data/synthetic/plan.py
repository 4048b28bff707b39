"""Which clips the corpus holds: every clip's speaker, emotion, sentence and level, hence its CREMA-D name.

The plan follows the config's (speaker, emotion) table exactly; sentences and levels are spread by
seeded permutations so that names never repeat and levels are balanced in every cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from avdisentangle.data.corpora.cremad import EMOTION_CODES, LEVEL_CODES, SENTENCE_CODES
from avdisentangle.data.synthetic.config import SyntheticConfig
from avdisentangle.data.synthetic.streams import names_stream

FIRST_ACTOR = 1001  # CREMA-D's first actor id; speaker i is actor FIRST_ACTOR + i


def actor_id(speaker_index: int) -> str:
    """The CREMA-D actor id of the speaker at this index."""
    return str(FIRST_ACTOR + speaker_index)


@dataclass(frozen=True)
class ClipPlan:
    """What one clip will be: its place in the corpus, its labels and hence its CREMA-D name."""

    speaker_index: int
    clip_index: int
    emotion: str
    sentence: str
    level: str

    @property
    def stem(self) -> str:
        return f"{actor_id(self.speaker_index)}_{self.sentence}_{self.emotion}_{self.level}"


def plan_clips(config: SyntheticConfig) -> list[ClipPlan]:
    """Every clip's name and labels, following ``config.emotion_counts()`` exactly.

    Within a (speaker, emotion) the k-th clip gets level k mod 4 and sentence k div 4 + 3 (k mod 4),
    both through seeded permutations: names never repeat (up to 48) and levels, hence intensities,
    are balanced in every cell.
    """
    counts = config.emotion_counts()
    plans = []
    for s in range(config.num_speakers):
        clip = 0
        for e in range(config.num_emotions):
            rng = names_stream(config.seed, s, e)
            levels, sentences = rng.permutation(len(LEVEL_CODES)), rng.permutation(len(SENTENCE_CODES))
            for k in range(counts[s, e]):
                sentence = SENTENCE_CODES[sentences[(k // 4 + 3 * (k % 4)) % len(SENTENCE_CODES)]]
                plans.append(ClipPlan(s, clip, EMOTION_CODES[e], sentence, LEVEL_CODES[levels[k % 4]]))
                clip += 1
    return plans
