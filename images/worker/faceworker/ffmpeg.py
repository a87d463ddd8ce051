"""Running ffmpeg/ffprobe as subprocesses, and what their exit codes mean for an order.

Why subprocess pipes and not cv2.VideoCapture: ffmpeg gives us exact control over frame selection
(by index, never by a timestamp seek that can land one frame off), fps, GOP and pixel format, and it is
the same binary that later concatenates the segments, so counts agree end to end.
"""
from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence

from faceworker import settings
from faceworker.errors import BadInput, TransientError, WorkerError
from faceworker.lifeline import die_with_parent_preexec

FFMPEG = settings.text("FACEFACTORY_FFMPEG")
FFPROBE = settings.text("FACEFACTORY_FFPROBE")


class FFmpegError(WorkerError):
    """ffmpeg/ffprobe failed for a reason that is neither the input's fault nor transient: a bug."""


def check_exit(proc_rc: int, stderr: bytes | str, what: str, bad_input: bool = False) -> None:
    """Raise for a failed ffmpeg/ffprobe exit: killed -> TransientError (retry), `bad_input` ->
    BadInput (the order's fault), else FFmpegError; one mapping so every caller agrees."""
    if proc_rc == 0:
        return
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    tail = "\n".join(text.strip().splitlines()[-6:])
    if proc_rc < 0 or proc_rc in (128 + signal.SIGKILL, 128 + signal.SIGTERM):
        raise TransientError(f"{what}: ffmpeg killed by signal ({proc_rc}); {tail}")
    if bad_input:
        raise BadInput(f"{what}: {tail or 'ffmpeg failed'}")
    raise FFmpegError(f"{what} failed (rc={proc_rc}): {tail}")


def run_ffmpeg(args: Sequence[str], what: str, bad_input: bool = False, timeout: float | None = None) -> str:
    """Run ffmpeg with `args`; map failures to BadInput/TransientError/FFmpegError. Returns stderr."""
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, preexec_fn=die_with_parent_preexec())
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"{what}: ffmpeg timed out after {timeout}s") from exc
    check_exit(proc.returncode, proc.stderr, what, bad_input)
    return proc.stderr.decode("utf-8", "replace")
