"""Cheap file checks shared by the corpus readers: names, existence and size, never decoding.

Decoding errors are the feature extractor's business; a reader only refuses what it can see
without opening a file, so listing a corpus of thousands of clips stays instant.
"""

from __future__ import annotations

from pathlib import Path

from avdisentangle.data.records import ClipRecord, CorpusError, CorpusListing, Refusal, require_clips

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3")  # in order of preference when one stem has several
VIDEO_SUFFIXES = (".flv", ".mp4", ".avi")
MEDIA_SUFFIXES = AUDIO_SUFFIXES + VIDEO_SUFFIXES
# A repository cloned without `git lfs` holds small text pointers where the media should be.
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
LFS_POINTER = "Git LFS pointer, not media"
LFS_POINTER_MAX_BYTES = 1024


def is_media(path: Path) -> bool:
    """Whether a file is audio or video by its extension; anything else is skipped silently."""
    return path.suffix.lower() in MEDIA_SUFFIXES


def relative(path: Path, root: Path) -> str:
    """How a refusal names a file: its path under the root, with '/' on every OS."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def list_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files and the sub-folders of a folder, sorted so that every run reads the same order."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise CorpusError(f"cannot list {folder}: {err}") from err
    return [entry for entry in entries if not entry.is_dir()], [entry for entry in entries if entry.is_dir()]


def file_problem(path: Path, kind: str) -> str | None:
    """Why a media file cannot be used (missing, a folder, unreadable, empty, a Git LFS pointer),
    or None if it looks fine. Only files small enough to be LFS pointers are opened."""
    try:
        if path.is_dir():
            return f"{kind} path is a folder, not a file"
        size = path.stat().st_size
        if size == 0:
            return f"empty {kind} file (0 bytes)"
        if size <= LFS_POINTER_MAX_BYTES and is_lfs_pointer(path):
            return LFS_POINTER
    except FileNotFoundError:
        return f"missing {kind} file"
    except OSError as err:
        return f"unreadable {kind} file: {err.strerror or err}"
    return None


def is_lfs_pointer(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX


def lfs_hint(refused: list[Refusal], total_files: int, root: Path) -> str | None:
    """One sentence for a corpus cloned without Git LFS, or None when no file is a pointer."""
    pointers = sum(1 for refusal in refused if refusal.kind == LFS_POINTER)
    if not pointers:
        return None
    return f"{pointers} of {total_files} files are Git LFS pointers, not media: run `git lfs pull` in {root}"


def clip_file_refusals(root: Path, audio: Path | None, video: Path | None) -> list[Refusal]:
    """One refusal per unusable file of a clip; the clip is kept only when this is empty.

    Only the files of the modalities the run reads are given (the other is None). Audio and video may
    be one file (a video whose audio track is used), which is then checked once.
    """
    kinds = {audio: "audio", video: "video"} if audio != video else {audio: "audio-video"}
    kinds.pop(None, None)
    return [
        Refusal(relative(path, root), problem) for path, kind in kinds.items() if (problem := file_problem(path, kind))
    ]


def finish(clips: list[ClipRecord], refused: list[Refusal], root: Path, corpus: str, expected: str) -> CorpusListing:
    """The listing with clips sorted by id (deterministic), or CorpusError when none was usable
    (saying so once when the files are Git LFS pointers)."""
    if not clips and (hint := lfs_hint(refused, len(refused), root)):
        raise CorpusError(hint)
    return require_clips(CorpusListing(sorted(clips, key=lambda clip: clip.clip_id), refused), root, corpus, expected)
