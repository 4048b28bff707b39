"""RAVDESS as distributed: <root>/Actor_NN/MM-VV-EE-II-SS-RR-AA.{mp4,wav}, seven two-digit fields.

The modality field (01 audio-video, 02 video-only, 03 audio-only) splits one recording into
several files, so a clip is identified by the six other fields and its files are paired by them.
A run reads the files of its modalities only: the speech set as most papers use it (`03-*.wav`
alone, "Audio_Speech_Actors_01-24") is a whole audio-only corpus.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from avdisentangle.data.corpora._files import clip_file_refusals, finish, is_media, list_folder, relative
from avdisentangle.data.modalities import MODALITIES, parse_modalities
from avdisentangle.data.records import ClipRecord, CorpusListing, Refusal, require_root

MODALITY_SUFFIX = {"01": ".mp4", "02": ".mp4", "03": ".wav"}
MODALITY_NAMES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
EMOTION_BY_CODE = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "anger", "06": "fear", "07": "disgust", "08": "surprise",
}
INTENSITIES = {"01": "normal", "02": "strong"}
FIELD_CODES = {
    "modality": tuple(MODALITY_SUFFIX),
    "vocal channel": tuple(VOCAL_CHANNELS),
    "emotion": tuple(EMOTION_BY_CODE),
    "intensity": tuple(INTENSITIES),
    "statement": ("01", "02"),
    "repetition": ("01", "02"),
    "actor": tuple(f"{n:02d}" for n in range(1, 25)),
}
ACTOR_FOLDER = re.compile(r"Actor_(\d\d)")
EXPECTED = {
    ("audio", "video"): "Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4 (modality 01/02) with .wav (modality 03) beside it",
    ("audio",): "Actor_NN/03-VV-EE-II-SS-RR-AA.wav (audio-only) or 01-*.mp4 (audio-video)",
    ("video",): "Actor_NN/02-VV-EE-II-SS-RR-AA.mp4 (video-only) or 01-*.mp4 (audio-video)",
}
# Where each modality comes from, in order of preference: a video's audio track serves as audio.
SOURCES = {"audio": ("03", "01"), "video": ("02", "01")}


def parse_name(name: str) -> list[str]:
    """The seven codes of a RAVDESS file name; the ValueError names the field that is wrong."""
    stem, _, suffix = name.rpartition(".")
    codes = stem.split("-")
    if len(codes) != len(FIELD_CODES):
        raise ValueError(f"expected 7 two-digit fields like 01-01-01-01-01-01-01, got {len(codes)}")
    for (field, allowed), code in zip(FIELD_CODES.items(), codes):
        if code not in allowed:
            raise ValueError(f"unknown {field} code {code!r}: expected {allowed[0]}-{allowed[-1]}")
    modality = codes[0]
    if f".{suffix.lower()}" != MODALITY_SUFFIX[modality]:
        expected = MODALITY_SUFFIX[modality]
        raise ValueError(f"modality {modality} ({MODALITY_NAMES[modality]}) should be a {expected} file, not .{suffix}")
    return codes


def _check_channels(vocal_channels: str | Sequence[str]) -> set[str]:
    """The selected vocal channels, or a ValueError that lists the valid ones."""
    chosen = {vocal_channels} if isinstance(vocal_channels, str) else set(vocal_channels)
    if not chosen or not chosen <= set(VOCAL_CHANNELS.values()):
        raise ValueError(f"vocal_channels must pick one or both of 'speech' and 'song', got {vocal_channels!r}")
    return chosen


def _stray_folder(folder: Path, root: Path) -> list[Refusal]:
    """Refuse a folder that is not Actor_NN when it holds media, so misplaced clips are not lost unseen."""
    count = sum(1 for path in folder.rglob("*") if is_media(path) and not path.is_dir())
    reason = f"not an Actor_NN folder directly under the root: its {count} media file(s) were not read"
    return [Refusal(relative(folder, root), reason)] if count else []


def _files_by_clip(root: Path, channels: set[str], refused: list[Refusal]) -> dict[tuple[str, ...], dict[str, Path]]:
    """Every well-named media file of the chosen vocal channels, by clip (its six codes after the
    modality) and then by modality; every misplaced or misnamed file is refused instead."""
    files_by_clip: dict[tuple[str, ...], dict[str, Path]] = {}
    loose_files, folders = list_folder(root)
    outside = "media file outside the Actor_NN folders"
    refused += [Refusal(relative(path, root), outside) for path in filter(is_media, loose_files)]
    for folder in folders:
        actor_match = ACTOR_FOLDER.fullmatch(folder.name)
        if actor_match is None:
            refused += _stray_folder(folder, root)
            continue
        files, subfolders = list_folder(folder)
        for subfolder in subfolders:
            refused += _stray_folder(subfolder, root)
        for path in filter(is_media, files):
            try:
                codes = parse_name(path.name)
            except ValueError as err:
                refused.append(Refusal(relative(path, root), f"name does not parse: {err}"))
                continue
            if codes[-1] != actor_match.group(1):
                reason = f"actor field disagrees with its folder: {codes[-1]} in {folder.name}"
                refused.append(Refusal(relative(path, root), reason))
                continue
            if VOCAL_CHANNELS[codes[1]] in channels:
                files_by_clip.setdefault(tuple(codes[1:]), {})[codes[0]] = path
    return files_by_clip


def _missing_reason(modality: str, clip_id: str) -> str:
    if modality == "audio":
        return f"missing audio file: no 03-{clip_id}.wav, nor 01-{clip_id}.mp4 whose audio track could serve"
    return f"missing video file: no 02-{clip_id}.mp4 or 01-{clip_id}.mp4 beside it"


def read_ravdess(
    root: str | Path | None, vocal_channels: str | Sequence[str] = ("speech",), modalities: Sequence[str] = MODALITIES
) -> CorpusListing:
    """Each recording's file of every modality the run reads: video 02 (else the 01 mp4), audio 03
    (else the 01 mp4's track)."""
    modalities = parse_modalities(modalities)
    channels = _check_channels(vocal_channels)
    root = require_root(root, "ravdess")
    refused: list[Refusal] = []
    files_by_clip = _files_by_clip(root, channels, refused)

    clips = []
    for key, by_modality in sorted(files_by_clip.items()):
        clip_id = "-".join(key)
        paths = {
            modality: next((by_modality[code] for code in SOURCES[modality] if code in by_modality), None)
            for modality in modalities
        }
        absent = [modality for modality, path in paths.items() if path is None]
        if absent:
            present = next(iter(by_modality.values()))
            refused.append(Refusal(relative(present, root), _missing_reason(absent[0], clip_id)))
            continue
        unusable = clip_file_refusals(root, paths.get("audio"), paths.get("video"))
        if unusable:
            refused.extend(unusable)
            continue
        vocal_channel, emotion, intensity, statement, repetition, actor = key
        clips.append(
            ClipRecord(
                clip_id=clip_id,
                audio_path=paths.get("audio"),
                video_path=paths.get("video"),
                speaker=actor,
                emotion=EMOTION_BY_CODE[emotion],
                extras={
                    "vocal_channel": VOCAL_CHANNELS[vocal_channel],
                    "intensity": INTENSITIES[intensity],
                    "statement": statement,
                    "repetition": repetition,
                },
            )
        )
    return finish(clips, refused, root, "ravdess", EXPECTED[modalities])
