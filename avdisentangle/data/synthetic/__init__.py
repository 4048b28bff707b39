"""A built-in synthetic audio-visual emotion corpus, written in the CREMA-D layout.

Why synthetic: experiments on disentanglement need a corpus whose speaker and emotion factors are
known exactly and whose speaker-emotion dependence can be dialled in (``speaker_emotion_correlation``).
Why the CREMA-D layout: the clips then go through exactly the same reader and feature code as real data.

Data flow, one module each: ``distribution`` (who shows which emotion, how often) -> ``config`` (what
determines the corpus, checked) -> ``plan`` (every clip's labels and name) -> ``factors`` (each
speaker's face and voice, each emotion's style) -> ``voice`` and ``face`` (one clip's audio, and video
whose mouth follows it) -> ``writer`` (files, then the manifest). ``streams`` gives every speaker,
clip and name list its own seeded generator.
"""

from avdisentangle.data.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from avdisentangle.data.synthetic.plan import plan_clips
from avdisentangle.data.synthetic.writer import generate_corpus, is_complete

__all__ = ["GENERATOR_VERSION", "SyntheticConfig", "generate_corpus", "is_complete", "plan_clips"]
