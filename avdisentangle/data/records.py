"""What every corpus reader produces: clip records, refusals, and the error for unusable roots.

Readers never raise for one bad file: they refuse it with a reason, so a run neither crashes on a
corrupt clip nor drops data silently. Only a root that cannot be used at all is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from avdisentangle.errors import UserError


class CorpusError(UserError):
    """The corpus as a whole cannot be used (missing root, no clips, unreadable manifest)."""


@dataclass(frozen=True)
class ClipRecord:
    """One clip with its labels and whatever else its name carries. It holds the file of each modality
    the run reads (audio and video may be one file: a video's own audio track), and None for a modality
    the run does not read, so an audio-only run neither needs nor fingerprints the videos."""

    clip_id: str
    audio_path: Path | None
    video_path: Path | None
    speaker: str
    emotion: str
    extras: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    """A file or clip that was not used, and why: a reason reads `<kind>: <detail>`, where the kind
    is the same for every item refused for the same cause, so summaries can count refusals by kind."""

    item: str
    reason: str

    @property
    def kind(self) -> str:
        return self.reason.split(": ", 1)[0]

    @property
    def detail(self) -> str:
        return self.reason.split(": ", 1)[1] if ": " in self.reason else ""


def refusals_by_kind(refused: list[Refusal]) -> dict[str, list[Refusal]]:
    """Refusals grouped by kind, the most frequent kind first."""
    groups: dict[str, list[Refusal]] = {}
    for refusal in refused:
        groups.setdefault(refusal.kind, []).append(refusal)
    return dict(sorted(groups.items(), key=lambda item: -len(item[1])))


@dataclass
class CorpusListing:
    """A reader's answer: the clips it accepted and the items it refused."""

    clips: list[ClipRecord]
    refused: list[Refusal]


def require_root(root: str | Path | None, corpus: str) -> Path:
    """The corpus root as a Path, or a clear error naming what is wrong with it."""
    if root is None:
        raise CorpusError(f"corpus '{corpus}' needs --data.root pointing at its folder")
    path = Path(root).expanduser()
    if not path.exists():
        raise CorpusError(f"{corpus} root does not exist: {path}")
    if not path.is_dir():
        raise CorpusError(f"{corpus} root is not a folder: {path}")
    return path


# What to do when every clip lacks one modality: the corpus holds the other alone.
ONE_MODALITY_HINTS = {
    "missing video file": "an audio-only corpus? set --data.features.modalities=audio",
    "missing audio file": "a video-only corpus? set --data.features.modalities=video",
}


def require_clips(listing: CorpusListing, root: Path, corpus: str, expected: str) -> CorpusListing:
    """Raise when a root held no usable clip, naming the layout that was expected (and the modalities
    setting, when every clip lacked the same modality)."""
    if not listing.clips:
        detail = (
            f"; {len(listing.refused)} files refused, e.g. {listing.refused[0].item}: {listing.refused[0].reason}"
            if listing.refused
            else ""
        )
        kinds = {refusal.kind for refusal in listing.refused}
        hint = ONE_MODALITY_HINTS.get(kinds.pop()) if len(kinds) == 1 else None
        detail += f"; {hint}" if hint else ""
        raise CorpusError(f"no {corpus} clips found under {root} (expected {expected}){detail}")
    return listing
