"""The modalities a run reads: one spelling for the data (what is extracted and cached) and the model.

It lives in `data/` because the data layer decides it first (`FeatureConfig.modalities`), and the CLI
links that value into the model; `models/` imports it from here, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

from avdisentangle.errors import UserError

MODALITIES = ("audio", "video")


def parse_modalities(spec: str | Sequence[str]) -> tuple[str, ...]:
    """'video, audio' (or ['video', 'audio']) -> ('audio', 'video'): a validated, canonically ordered tuple."""
    parts = spec.split(",") if isinstance(spec, str) else spec
    names = {name.strip() for name in parts if name.strip()}
    if not names or not names <= set(MODALITIES):
        raise UserError(
            f"modalities must be a non-empty comma-separated subset of {', '.join(MODALITIES)}; got {spec!r}"
        )
    return tuple(m for m in MODALITIES if m in names)
