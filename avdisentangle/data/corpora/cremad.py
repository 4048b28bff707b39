"""CREMA-D as distributed: AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav beside VideoFlash/<same stem>.flv.

The built-in synthetic corpus is written in this layout too, so one reader serves both.
"""

from __future__ import annotations

from pathlib import Path

from avdisentangle.data.corpora._files import clip_file_refusals, finish, is_media, list_folder, relative
from avdisentangle.data.records import ClipRecord, CorpusError, CorpusListing, Refusal, require_root

# The codes of a CREMA-D file name, shared by this reader and the synthetic corpus writer.
SENTENCE_CODES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
EMOTION_BY_CODE = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
EMOTION_CODES = tuple(EMOTION_BY_CODE)  # in this order the synthetic corpus numbers its emotions
LEVEL_CODES = ("LO", "MD", "HI", "XX")  # intensity: low, medium, high, unspecified
#: Clips in the released corpus (91 actors; Cao et al. 2014, "CREMA-D", IEEE Trans. Affective Computing).
CLIP_COUNT = 7442
AUDIO_SUFFIXES = (".wav",)
VIDEO_SUFFIXES = (".flv", ".mp4", ".avi")  # in order of preference when one stem has several
EXPECTED = "AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav with VideoFlash/<same name>.flv"


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


def read_cremad(root: str | Path | None) -> CorpusListing:
    """Pair every AudioWAV/*.wav with its VideoFlash video; refuse what cannot be paired or used."""
    root = require_root(root, "cremad")
    missing = [name for name in ("AudioWAV", "VideoFlash") if not (root / name).is_dir()]
    if missing:
        raise CorpusError(f"CREMA-D root {root} has no {' or '.join(missing)} folder (expected {EXPECTED})")
    refused: list[Refusal] = []
    audio = _media_by_stem(root / "AudioWAV", root, AUDIO_SUFFIXES, refused)
    video = _media_by_stem(root / "VideoFlash", root, VIDEO_SUFFIXES, refused)
    clips = []
    for stem in sorted(audio.keys() | video.keys()):
        if stem not in video:
            refused.append(Refusal(relative(audio[stem], root), f"missing video file: VideoFlash/{stem}.flv"))
            continue
        if stem not in audio:
            refused.append(Refusal(relative(video[stem], root), f"missing audio file: AudioWAV/{stem}.wav"))
            continue
        unusable = clip_file_refusals(root, audio[stem], video[stem])
        if unusable:
            refused.extend(unusable)
            continue
        actor, sentence, emotion, level = parse_name(stem)
        clips.append(
            ClipRecord(
                clip_id=stem,
                audio_path=audio[stem],
                video_path=video[stem],
                speaker=actor,
                emotion=EMOTION_BY_CODE[emotion],
                extras={"sentence": sentence, "level": level},
            )
        )
    return finish(clips, refused, root, "cremad", EXPECTED)
