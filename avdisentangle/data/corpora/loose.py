"""Unlabelled clips for prediction: single files or folders, paired by file stem.

A video and an audio file with the same stem in the same folder form one clip; a video alone
uses its own audio track. A run of one modality reads that modality's file alone: an audio file
(or a video's track) for audio, a video for video. Labels are unknown (empty strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from avdisentangle.data.corpora._files import AUDIO_SUFFIXES, MEDIA_SUFFIXES, clip_file_refusals, is_media
from avdisentangle.data.modalities import MODALITIES, parse_modalities
from avdisentangle.data.records import ClipRecord, CorpusError, CorpusListing, Refusal


def read_loose_files(paths: list[str | Path], modalities: Sequence[str] = MODALITIES) -> CorpusListing:
    """Clips from the given files and folders (folders are searched recursively)."""
    modalities = parse_modalities(modalities)
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and is_media(p))
        elif path.exists():
            files.append(path)
        else:
            raise CorpusError(f"no such file or folder to predict on: {path}")
    by_stem: dict[Path, list[Path]] = {}
    for file in files:
        by_stem.setdefault(file.with_suffix(""), []).append(file)
    clips, refused = [], []
    for stem, group in sorted(by_stem.items()):
        videos = [f for f in group if is_media(f) and f.suffix.lower() not in AUDIO_SUFFIXES]
        # An audio file named like the video (listed, or beside a video given alone), preferred in
        # AUDIO_SUFFIXES' order; else the video's own track.
        audios = [f for suffix in AUDIO_SUFFIXES for f in group if f.suffix.lower() == suffix]
        audios += [stem.with_suffix(suffix) for suffix in AUDIO_SUFFIXES if stem.with_suffix(suffix).exists()]
        if "video" in modalities and not videos:
            refused.append(Refusal(str(group[0]), "no video file with the same name beside it"))
            continue
        if "audio" in modalities and not (audios or videos):
            refused.append(Refusal(str(group[0]), "not an audio file, nor a video whose audio track could serve"))
            continue
        audio = (audios or videos)[0] if "audio" in modalities else None
        video = videos[0] if "video" in modalities else None
        problems = clip_file_refusals(stem.parent, audio, video)
        if problems:
            refused += problems
            continue
        clips.append(ClipRecord(str(stem), audio, video, speaker="", emotion=""))
    if not clips and not refused:
        kinds = ", ".join(MEDIA_SUFFIXES)
        raise CorpusError(f"nothing to predict in {', '.join(map(str, paths))}: no {kinds} file there")
    return CorpusListing(sorted(clips, key=lambda clip: clip.clip_id), refused)
