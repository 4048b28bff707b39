"""Unlabelled clips for prediction: single files or folders, paired by file stem.

A video and an audio file with the same stem in the same folder form one clip; a video alone
uses its own audio track. Labels are unknown (empty strings).
"""

from __future__ import annotations

from pathlib import Path

from avdisentangle.data.corpora._files import clip_file_refusals, is_media
from avdisentangle.data.records import ClipRecord, CorpusError, CorpusListing, Refusal

AUDIO_SUFFIXES = (".wav",)


def read_loose_files(paths: list[str | Path]) -> CorpusListing:
    """Clips from the given files and folders (folders are searched recursively)."""
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
        audios = [f for f in group if f.suffix.lower() in AUDIO_SUFFIXES]
        sibling_audio = [stem.with_suffix(s) for s in AUDIO_SUFFIXES if stem.with_suffix(s).exists()]
        if not videos:
            refused.append(Refusal(str(group[0]), "no video file with the same name beside it"))
            continue
        audio = (audios or sibling_audio or [videos[0]])[0]
        problems = clip_file_refusals(stem.parent, audio, videos[0])
        if problems:
            refused += problems
            continue
        clips.append(ClipRecord(str(stem), audio, videos[0], speaker="", emotion=""))
    if not clips and not refused:
        raise CorpusError(f"nothing to predict in {', '.join(map(str, paths))}: no .wav, .flv, .mp4 or .avi file there")
    return CorpusListing(sorted(clips, key=lambda clip: clip.clip_id), refused)
