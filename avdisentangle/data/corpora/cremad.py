"""CREMA-D as distributed: AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav beside VideoFlash/<same stem>.flv.

The corpus also ships its audio as AudioMP3/*.mp3; either audio folder serves (WAV preferred), and
a run reads only the folders of its modalities, so `AudioWAV/` alone is a whole audio-only corpus.
The built-in synthetic corpus is written in this layout too, so one reader serves both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from avdisentangle.data.corpora._files import (
    VIDEO_SUFFIXES,
    clip_file_refusals,
    finish,
    is_media,
    list_folder,
    relative,
)
from avdisentangle.data.modalities import MODALITIES, parse_modalities
from avdisentangle.data.records import ONE_MODALITY_HINTS, ClipRecord, CorpusError, CorpusListing, Refusal, require_root

# The codes of a CREMA-D file name, shared by this reader and the synthetic corpus writer.
SENTENCE_CODES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
EMOTION_BY_CODE = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
EMOTION_CODES = tuple(EMOTION_BY_CODE)  # in this order the synthetic corpus numbers its emotions
LEVEL_CODES = ("LO", "MD", "HI", "XX")  # intensity: low, medium, high, unspecified
#: Clips in the released corpus (91 actors; Cao et al. 2014, "CREMA-D", IEEE Trans. Affective Computing).
CLIP_COUNT = 7442
# The folders of each modality, in order of preference, with the file types each holds.
FOLDERS = {
    "audio": {"AudioWAV": (".wav",), "AudioMP3": (".mp3",)},
    "video": {"VideoFlash": VIDEO_SUFFIXES},  # .flv preferred when one stem has several
}
EXPECTED_FILES = {"audio": "AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav", "video": "VideoFlash/<same name>.flv"}


def expected(modalities: Sequence[str]) -> str:
    """The layout a run of these modalities reads, for error messages."""
    return " with ".join(EXPECTED_FILES[modality] for modality in modalities)


def parse_name(stem: str) -> tuple[str, str, str, str]:
    """(actor, sentence, emotion code, level) from a file stem; the ValueError names the wrong field."""
    fields = stem.split("_")
    if len(fields) != 4:
        raise ValueError(
            f"expected <actor>_<sentence>_<emotion>_<level> (4 fields joined by '_'), got {len(fields)}"
        )
    actor, sentence, emotion, level = fields
    if not (len(actor) == 4 and actor.isascii() and actor.isdigit()):
        raise ValueError(f"bad actor id {actor!r}: expected 4 digits such as 1001")
    if sentence not in SENTENCE_CODES:
        raise ValueError(f"unknown sentence code {sentence!r}: expected one of {', '.join(SENTENCE_CODES)}")
    if emotion not in EMOTION_BY_CODE:
        raise ValueError(f"unknown emotion code {emotion!r}: expected one of {', '.join(EMOTION_CODES)}")
    if level not in LEVEL_CODES:
        raise ValueError(f"unknown level {level!r}: expected one of {', '.join(LEVEL_CODES)}")
    return actor, sentence, emotion, level


def _media_by_stem(folder: Path, root: Path, suffixes: tuple[str, ...], refused: list[Refusal]) -> dict[str, Path]:
    """Well-named media files of one kind in a folder, by stem; the preferred suffix wins a tie."""
    found: dict[str, Path] = {}
    for path in list_folder(folder)[0]:
        if not is_media(path):
            continue
        suffix = path.suffix.lower()
        if suffix not in suffixes:
            holds = "/".join(suffixes)
            reason = f"wrong file type for its folder: {suffix} in {folder.name}/, which holds {holds} files"
            refused.append(Refusal(relative(path, root), reason))
            continue
        try:
            parse_name(path.stem)
        except ValueError as err:
            refused.append(Refusal(relative(path, root), f"name does not parse: {err}"))
            continue
        current = found.get(path.stem)
        if current is None or suffixes.index(suffix) < suffixes.index(current.suffix.lower()):
            found[path.stem] = path
    return found


def _files_by_stem(root: Path, modality: str, refused: list[Refusal]) -> dict[str, Path] | None:
    """Every well-named file of one modality, by stem, from its folders in order of preference;
    None when the root has none of that modality's folders."""
    folders = {name: suffixes for name, suffixes in FOLDERS[modality].items() if (root / name).is_dir()}
    if not folders:
        return None
    found: dict[str, Path] = {}
    for name, suffixes in folders.items():
        for stem, path in _media_by_stem(root / name, root, suffixes, refused).items():
            found.setdefault(stem, path)
    return found


def read_cremad(root: str | Path | None, modalities: Sequence[str] = MODALITIES) -> CorpusListing:
    """Pair every clip's files of the run's modalities (AudioWAV or AudioMP3, VideoFlash); refuse what
    cannot be paired or used."""
    modalities = parse_modalities(modalities)
    root = require_root(root, "cremad")
    refused: list[Refusal] = []
    files = {modality: _files_by_stem(root, modality, refused) for modality in modalities}
    absent = [modality for modality, found in files.items() if found is None]
    if absent:
        folders = " and no ".join(" or ".join(FOLDERS[modality]) for modality in absent)
        # The other modality's files are there: most likely a corpus (or copy) of that modality alone.
        others_present = any((root / name).is_dir() for m in MODALITIES if m != absent[0] for name in FOLDERS[m])
        hint = f"; {ONE_MODALITY_HINTS[f'missing {absent[0]} file']}" if others_present else ""
        raise CorpusError(f"CREMA-D root {root} has no {folders} folder (expected {expected(modalities)}){hint}")
    clips = []
    for stem in sorted(set().union(*files.values())):
        paths = {modality: found.get(stem) for modality, found in files.items()}
        absent = [modality for modality, path in paths.items() if path is None]
        if absent:
            present = next(path for path in paths.values() if path is not None)
            folder = next(iter(FOLDERS[absent[0]]))
            suffix = FOLDERS[absent[0]][folder][0]
            refused.append(Refusal(relative(present, root), f"missing {absent[0]} file: {folder}/{stem}{suffix}"))
            continue
        unusable = clip_file_refusals(root, paths.get("audio"), paths.get("video"))
        if unusable:
            refused.extend(unusable)
            continue
        actor, sentence, emotion, level = parse_name(stem)
        clips.append(
            ClipRecord(
                clip_id=stem,
                audio_path=paths.get("audio"),
                video_path=paths.get("video"),
                speaker=actor,
                emotion=EMOTION_BY_CODE[emotion],
                extras={"sentence": sentence, "level": level},
            )
        )
    return finish(clips, refused, root, "cremad", expected(modalities))
