"""Any corpus described by a CSV manifest: clip_id,audio,video,speaker,emotion plus optional columns.

This is the escape hatch for layouts without a dedicated reader; extra columns become extras,
a run needs the file columns of its modalities only (an audio-only corpus: no `video` column, or
an empty one),
and relative paths resolve against the CSV's own folder so a manifest travels with its data.
Emotion labels are lower-cased, so "ANG" and "ang " name one class; a label far rarer than the
others is reported as a likely typo.
"""

from __future__ import annotations

import csv
import difflib
import statistics
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from avdisentangle.data.corpora._files import file_problem, finish
from avdisentangle.data.modalities import MODALITIES, parse_modalities
from avdisentangle.data.records import ONE_MODALITY_HINTS, ClipRecord, CorpusError, CorpusListing, Refusal, require_root

LABELS = ("clip_id", "speaker", "emotion")
MANIFEST_NAME = "manifest.csv"


def required(modalities: Sequence[str]) -> tuple[str, ...]:
    """The columns a run of these modalities needs: one file column per modality, and the labels."""
    return ("clip_id", *modalities, "speaker", "emotion")


def expected(modalities: Sequence[str]) -> str:
    return f"a CSV with columns {','.join(required(modalities))}"


def locate_manifest(root: str | Path | None) -> Path:
    """The CSV itself when root is a file, else the manifest.csv inside the root folder."""
    if root is not None and Path(root).expanduser().is_file():
        return Path(root).expanduser()
    folder = require_root(root, "manifest")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise CorpusError(
            f"no {MANIFEST_NAME} in {folder}; pass the CSV file itself or a folder holding {MANIFEST_NAME}"
        )
    return path


def _read_rows(path: Path, modalities: tuple[str, ...]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The stripped header and the non-blank rows with the line each ends on."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            rows = [(reader.line_num, row) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CorpusError(f"cannot read manifest {path}: {err}") from err
    columns = [name.strip() for name in header]
    if not any(columns):
        raise CorpusError(f"manifest {path} is empty (expected {expected(modalities)})")
    missing = [name for name in required(modalities) if name not in columns]
    if missing:
        media = [name for name in missing if name in MODALITIES]
        hint = f"; {ONE_MODALITY_HINTS[f'missing {media[0]} file']}" if media and len(media) < len(modalities) else ""
        raise CorpusError(f"manifest {path} lacks column(s) {', '.join(missing)}; found {', '.join(columns)}{hint}")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise CorpusError(f"manifest {path} repeats column(s) {', '.join(repeated)}")
    if not rows:
        raise CorpusError(f"manifest {path} has a header but no rows")
    return columns, rows


def _resolve(value: str, folder: Path) -> Path:
    """A path from the manifest, relative ones taken against the manifest's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path


def read_manifest(root: str | Path | None, modalities: Sequence[str] = MODALITIES) -> CorpusListing:
    """One clip per row; a row with empty fields, a repeated id or unusable files is refused. Only the
    file columns of the run's modalities are read; the other's, if any, are ignored."""
    modalities = parse_modalities(modalities)
    path = locate_manifest(root)
    columns, rows = _read_rows(path, modalities)
    refused: list[Refusal] = []
    clips = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        item = f"{path.name} line {line}"
        if len(row) != len(columns):
            refused.append(Refusal(item, f"wrong number of fields: {len(row)}, but the header has {len(columns)}"))
            continue
        values = dict(zip(columns, (value.strip() for value in row)))
        clip_id = values["clip_id"]
        if clip_id in first_line:
            refused.append(Refusal(item, f"duplicate clip_id: {clip_id!r} (first on line {first_line[clip_id]})"))
            continue
        if clip_id:
            first_line[clip_id] = line
        empty = [name for name in LABELS if not values[name]]
        if empty:
            refused.append(Refusal(item, f"empty field(s): {', '.join(empty)}"))
            continue
        no_file = [kind for kind in modalities if not values[kind]]
        if no_file:
            reason = f"missing {no_file[0]} file: its {no_file[0]} field is empty (clip {clip_id!r})"
            refused.append(Refusal(item, reason))
            continue
        files = {kind: _resolve(values[kind], path.parent) for kind in modalities}
        problems = [
            f"{problem}: {values[kind]}" for kind, file in files.items() if (problem := file_problem(file, kind))
        ]
        if problems:
            refused.append(Refusal(item, f"{'; '.join(problems)} (clip {clip_id!r})"))
            continue
        clips.append(
            ClipRecord(
                clip_id=clip_id,
                audio_path=files.get("audio"),
                video_path=files.get("video"),
                speaker=values["speaker"],
                emotion=values["emotion"].lower(),  # "ANG" and "ang " are one class
                extras={name: value for name, value in values.items() if name and name not in (*LABELS, *MODALITIES)},
            )
        )
    warn_rare_emotions(clips, path)
    return finish(clips, refused, path.parent, "manifest", expected(modalities))


RARE_FRACTION = 0.1  # of the median clip count per emotion


def warn_rare_emotions(clips: list[ClipRecord], path: Path) -> None:
    """Warn about emotion labels far rarer than the rest: in a hand-made manifest they are usually typos."""
    counts = Counter(clip.emotion for clip in clips)
    typical = statistics.median(counts.values()) if counts else 0
    for label, count in sorted(counts.items()):
        if count < RARE_FRACTION * typical:
            close = difflib.get_close_matches(label, [other for other in counts if other != label], n=1)
            guess = f"; a typo of {close[0]!r}?" if close else ""
            warnings.warn(
                f"manifest {path}: emotion {label!r} labels only {count} clip(s), the median emotion "
                f"{typical:g}{guess}",
                stacklevel=3,
            )
