"""Frame-exact decode and encode through ffmpeg pipes: `read_frames` (by frame number, never by a
timestamp seek), `prefetch`, `FrameWriter` (H.264, frames in == frames out) and `BackgroundWriter`."""
from __future__ import annotations

import io
import os
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from fractions import Fraction
from typing import Any, cast

import numpy as np

from faceworker.errors import BadInput
from faceworker.ffmpeg import FFMPEG, FFmpegError, check_exit
from faceworker.frames import i420_size
from faceworker.lifeline import die_with_parent_preexec
from faceworker.probe import probe


def _grow_pipe(stream: Any, size: int = 1 << 20) -> None:
    """Raise a pipe's kernel buffer from 64 KiB to 1 MiB (Linux F_SETPIPE_SZ): fewer context switches
    per multi-megabyte raw frame. Best effort: other systems keep the default."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ValueError, AttributeError, ImportError):
        pass


def read_frames(
    path: str | os.PathLike[str],
    start: int = 0,
    end: int | None = None,
    size: tuple[int, int] | None = None,
    strict: bool = True,
    pix_fmt: str = "bgr24",
    decoder_threads: int = 1,
) -> Generator[np.ndarray, None, None]:
    """Yield BGR uint8 frames with index in [start, end), selected by frame number (not timestamp).

    With pix_fmt="yuv420p" each frame is an I420 buffer of shape (height * 3 / 2, width) instead:
    half the bytes, no colour conversion (faceworker.frames.FrameView works on it).

    `size` is (width, height) of the decoded frames; probed when omitted. With `strict`, fewer frames
    than requested raise BadInput (the range runs past the end of the video)."""
    if size is None:
        pr = probe(path)
        size = (pr.width, pr.height)
        if end is None:
            end = pr.frames
    if end is None:
        raise ValueError("end is required when size is given")
    if start < 0 or end < start:
        raise BadInput(f"bad frame range [{start}, {end})")
    want = end - start
    if want == 0:
        return
    width, height = size
    if pix_fmt not in ("bgr24", "yuv420p"):
        raise ValueError(f"read_frames: pix_fmt must be bgr24 or yuv420p, not {pix_fmt!r}")
    shape = (height, width, 3) if pix_fmt == "bgr24" else i420_size(width, height)
    frame_bytes = int(np.prod(shape))
    # One decoder thread: the Python consumer is always slower than a single-threaded decode, and
    # frame threading costs ~1.5 CPU-ms per 720p frame that the swap pass needs (benchmarks/engine_fps.py).
    args = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", str(decoder_threads),
            "-i", str(path), "-map", "0:v:0"]
    if start > 0:
        args += ["-vf", f"select=gte(n\\,{start})"]
    args += ["-fps_mode", "passthrough", "-frames:v", str(want), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=frame_bytes,
                            preexec_fn=die_with_parent_preexec())
    _grow_pipe(proc.stdout)
    got = 0
    try:
        assert proc.stdout is not None
        while got < want:
            buf = bytearray(frame_bytes)
            view = memoryview(buf)
            n = 0
            while n < frame_bytes:
                r = cast(io.BufferedIOBase, proc.stdout).readinto(view[n:])
                if not r:
                    break
                n += r
            if n == 0:
                break
            if n != frame_bytes:
                raise FFmpegError(f"decode {path}: truncated frame ({n} of {frame_bytes} bytes)")
            yield np.frombuffer(buf, dtype=np.uint8).reshape(shape)
            got += 1
        proc.stdout.close()
        err = proc.stderr.read() if proc.stderr else b""
        rc = proc.wait()
        check_exit(rc, err, f"decode {path}", bad_input=True)
        if strict and got != want:
            raise BadInput(f"decode {path}: asked for frames [{start}, {end}) but the video ended after {start + got}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def prefetch(frames: Iterator[np.ndarray], depth: int = 4) -> Generator[np.ndarray, None, None]:
    """Read ahead `depth` frames in a thread, so ffmpeg's decode overlaps the caller's per-frame work
    (the pipe read releases the GIL). Errors from the decoder surface at the same position."""
    import queue
    import threading

    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def pump() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        q.put(("frame", frame), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(("error", exc))

    thread = threading.Thread(target=pump, name="frame-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "frame":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        thread.join(timeout=5)
        close = getattr(frames, "close", None)
        if close is not None and not thread.is_alive():
            close()



class FrameWriter:
    """Encode BGR frames to H.264 (libx264, yuv420p): frames in == frames out, GOP starts at frame 0."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: Fraction | float | str,
        width: int,
        height: int,
        pix_fmt: str = "yuv420p",
        crf: int = 18,
        preset: str = "veryfast",
        threads: int = 0,
        convert_in_python: bool = False,
    ) -> None:
        if width % 2 or height % 2:
            raise BadInput(f"yuv420p needs even frame sizes, got {width}x{height} (normalise at ingest)")
        self.path = str(path)
        self.fps = Fraction(str(fps)) if not isinstance(fps, Fraction) else fps
        self.width, self.height = width, height
        self.frames = 0
        # With convert_in_python, BGR -> I420 happens here (cv2, SIMD, GIL released: in a
        # BackgroundWriter it overlaps the caller) instead of in ffmpeg's swscale, whose bgr24 input
        # path costs ~3 CPU-ms more per 720p frame; half the bytes cross the pipe. Both point-sample
        # chroma with BT.601 limited-range coefficients; luma may differ by one level of rounding.
        self._to_i420 = convert_in_python and pix_fmt == "yuv420p"
        self._in_fmt = "yuv420p" if self._to_i420 else "bgr24"
        rate = f"{self.fps.numerator}/{self.fps.denominator}"
        cmd = [
            FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", self._in_fmt, "-s", f"{width}x{height}", "-framerate", rate, "-i", "-",
            "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", pix_fmt,
            # No B-frames: mp4 edit lists from B-frame delay make concat durations drift by a frame.
            "-bf", "0", "-fps_mode", "passthrough", "-video_track_timescale", str(_timescale(self.fps)),
        ]
        if threads:
            cmd += ["-threads", str(threads)]
        if self.path.endswith(".mp4"):
            cmd += ["-movflags", "+faststart"]
        cmd.append(self.path)
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._err,
                                      preexec_fn=die_with_parent_preexec())
        _grow_pipe(self._proc.stdin)

    def check(self, frame: np.ndarray) -> None:
        """A BGR frame of this size, or (with convert_in_python) an I420 buffer of it."""
        if frame.dtype == np.uint8 and (frame.shape == (self.height, self.width, 3) or (
                self._to_i420 and frame.shape == i420_size(self.width, self.height))):
            return
        raise ValueError(f"frame {frame.shape} {frame.dtype} != ({self.height}, {self.width}, 3) uint8")

    def write(self, frame: np.ndarray) -> None:
        self.check(frame)
        assert self._proc.stdin is not None
        try:
            if frame.ndim == 2:  # already I420 (the swap pass keeps frames as decoded)
                self._proc.stdin.write(np.ascontiguousarray(frame).reshape(-1).data)
            elif self._to_i420:
                import cv2

                self._proc.stdin.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).reshape(-1).data)
            else:
                self._proc.stdin.write(np.ascontiguousarray(frame).reshape(-1).data)  # no copy
        except BrokenPipeError as exc:
            self._finish()
            raise FFmpegError(f"encode {self.path}: ffmpeg exited early") from exc
        self.frames += 1

    def _finish(self) -> int:
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        rc = self._proc.wait()
        self._err.seek(0)
        err = self._err.read()
        self._err.close()
        check_exit(rc, err, f"encode {self.path}")
        return rc

    def close(self) -> int:
        """Finish the file and return the number of frames written."""
        self._finish()
        return self.frames

    def abort(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class BackgroundWriter:
    """Hands frames to a FrameWriter from a thread, so the caller's next frame overlaps ffmpeg's
    encode (pipe writes release the GIL; a full pipe otherwise stalls the swap loop). At most
    `depth` frames wait in memory; an encoder error surfaces on the next write or on close."""

    def __init__(self, writer: FrameWriter, depth: int = 4) -> None:
        import queue
        import threading

        self.writer = writer
        self._q: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, name="frame-writer", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            frame = self._q.get()
            if frame is None:
                return
            if self._error is not None:
                continue  # drain so the producer never blocks on a dead encoder
            try:
                self.writer.write(frame)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

    def write(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self.writer.check(frame)
        self._q.put(frame)

    def close(self) -> int:
        """Wait for the queued frames, finish the file, return the number of frames written."""
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            self.writer.abort()
            raise self._error
        return self.writer.close()

    def abort(self) -> None:
        self._error = self._error or FFmpegError("aborted")
        self.writer.abort()  # kills ffmpeg first, so a blocked pipe write returns
        try:
            while True:
                self._q.get_nowait()
        except Exception:  # noqa: BLE001 - queue.Empty
            pass
        self._q.put(None)
        self._thread.join(timeout=5)


def _timescale(fps: Fraction) -> int:
    """A timescale in which every frame duration is an integer number of ticks (so concat is exact)."""
    return int(fps.numerator * (1000 if fps.denominator == 1 else 1))
