"""Published speaker-independent protocols: which fold each actor is tested in, from the actor ids alone.

Papers report CREMA-D over 5 subject-independent folds and RAVDESS over 6 folds of 4 actors. One
rule serves both: the actors, in id order, are cut into `num_folds` contiguous blocks of equal size
(the first blocks one actor larger when the count does not divide). For RAVDESS this is the common
split, actors 1-4, 5-8, ..., 21-24, and every block holds two men (odd ids) and two women (even
ids); dealing round-robin would put only men in folds 0, 2, 4 and only women in 1, 3, 5. CREMA-D
ships no official fold list; the same rule gives 1001-1019, 1020-1037, 1038-1055, 1056-1073 and
1074-1091, which a reader can rebuild by hand from the actor list.

The rule sees the actor ids only: not the seed, and not which clips were kept (an actor counts when
any of its files is in the corpus, refused or not), so refusing clips never moves an actor. A
generated corpus (a subset or another range of ids) gets the rule applied to the actors it has.
`python -m avdisentangle.data.protocols DIR` rewrites the shipped files (experiments/folds/).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avdisentangle.data.cache_integrity import read_rows
from avdisentangle.data.corpora.ravdess import FIELD_CODES as RAVDESS_FIELD_CODES
from avdisentangle.errors import UserError

VAL_RULE = (
    "val: for test fold k, round(val_fraction x actors) actors of the other folds (at least 1), evenly spaced "
    "in id order (the (i x n_other / n_val)-th, i = 0, 1, ...); the rest train"
)


@dataclass(frozen=True)
class FoldProtocol:
    """A corpus's published fold count and the actors of its release (for the shipped fold file)."""

    title: str
    num_folds: int
    released_actors: tuple[str, ...]
    why: str  # why the rule suits this corpus, for the file's header

    @property
    def file_name(self) -> str:
        return f"{self.title.lower().replace('-', '')}_{self.num_folds}fold.csv"


PROTOCOLS = {
    "cremad": FoldProtocol(
        "CREMA-D",
        5,
        tuple(str(actor) for actor in range(1001, 1092)),
        "CREMA-D ships no official fold list; the rule RAVDESS uses, so a reader can rebuild the folds by hand",
    ),
    "ravdess": FoldProtocol(
        "RAVDESS",
        6,
        RAVDESS_FIELD_CODES["actor"],
        "actors 1-4, 5-8, ..., 21-24, as RAVDESS papers commonly split it: 2 men (odd ids), 2 women (even) per fold",
    ),
}
PROTOCOLS["synthetic"] = PROTOCOLS["cremad"]  # written in the CREMA-D layout, with its actor ids


def protocol_for(corpus: str) -> FoldProtocol:
    """The protocol of a corpus, or a UserError for a corpus that has none (a manifest)."""
    if corpus not in PROTOCOLS:
        raise UserError(
            f"split protocol_folds: corpus {corpus!r} has no published fold protocol (only "
            f"{', '.join(PROTOCOLS)}); use --data.split=speaker_folds with --data.num_folds"
        )
    return PROTOCOLS[corpus]


def assign_folds(actors, num_folds: int) -> dict[str, int]:
    """{actor: fold}: the actors in id order, cut into `num_folds` contiguous blocks of equal size."""
    ordered = sorted(set(actors))
    if len(ordered) < num_folds:
        raise UserError(
            f"protocol folds: {len(ordered)} actor(s) for {num_folds} folds; every fold needs at least one actor"
        )
    blocks = np.array_split(np.arange(len(ordered)), num_folds)
    return {ordered[i]: fold for fold, block in enumerate(blocks) for i in block}


def refused_actor(corpus: str, item: str) -> str | None:
    """The actor a refused file or clip belongs to, read from its name (None when the name does not say)."""
    stem = Path(item).name.split(".")[0]
    if corpus == "ravdess":  # a file MM-VV-EE-II-SS-RR-AA or a clip VV-EE-II-SS-RR-AA
        fields = stem.split("-")
        return fields[-1] if len(fields) in (6, 7) and fields[-1] in RAVDESS_FIELD_CODES["actor"] else None
    fields = stem.split("_")  # <actor>_<sentence>_<emotion>_<level>
    return fields[0] if len(fields) == 4 and len(fields[0]) == 4 and fields[0].isdigit() else None


def corpus_folds(corpus: str, cache) -> dict[str, int]:
    """{actor: fold} of a cached corpus (a `FeatureCache`): the rule over every actor with a file in
    it, kept or refused."""
    refused = (refused_actor(corpus, row["item"]) for row in read_rows(cache.path / "refused.csv"))
    actors = set(cache.speaker_names) | {actor for actor in refused if actor is not None}
    return assign_folds(actors, protocol_for(corpus).num_folds)


def folds_text(protocol: FoldProtocol, fold_of: dict[str, int], source: str) -> str:
    """The citable table: a comment naming the protocol, the rule and `source`, then actor,fold rows."""
    header = [
        f"{protocol.title} speaker-independent protocol: {protocol.num_folds} folds of {len(fold_of)} actors "
        f"({source})",
        f"rule: actor ids in order, cut into {protocol.num_folds} contiguous blocks of equal size (the first "
        "blocks one larger when the count does not divide); see avdisentangle/data/protocols.py",
        f"why: {protocol.why}",
        VAL_RULE,
    ]
    rows = [f"{actor},{fold}" for actor, fold in sorted(fold_of.items())]
    return "".join(f"# {line}\n" for line in header) + "actor,fold\n" + "".join(f"{row}\n" for row in rows)


def released_folds_text(protocol: FoldProtocol) -> str:
    """The shipped file of a real corpus: the rule over every actor of its release."""
    return folds_text(protocol, assign_folds(protocol.released_actors, protocol.num_folds), "the released corpus")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/folds")
    target.mkdir(parents=True, exist_ok=True)
    for protocol in (PROTOCOLS["cremad"], PROTOCOLS["ravdess"]):
        (target / protocol.file_name).write_text(released_folds_text(protocol))
        print(f"wrote {target / protocol.file_name}")
