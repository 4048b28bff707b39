"""How a clip that cannot become features is reported: one exception and one way to word any error.

Its own module because the audio, face and feature modules all raise it, and cache code words its
own errors the same way; the reason then reaches the user as a refusal, never as a traceback.
"""

from __future__ import annotations


class ClipRefused(Exception):
    """A clip that cannot be turned into features; the message is the reason shown to the user,
    `<kind>: <detail>` (see `Refusal`), and never names the file, which the refusal's item does."""


def describe_error(error: BaseException) -> str:
    """An exception as a refusal detail that is never empty: some decoders raise without a message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    message = str(error).strip()
    if message:
        return f"{type(error).__name__}: {message}"
    if type(error).__name__ == "NoBackendError":  # audioread's, raised with no message at all
        return "no decoder could read its audio (a video without an audio stream, or a format that needs ffmpeg)"
    return f"{type(error).__name__} (raised without a message)"
