"""Sample media built from faces that ship inside PyPI packages (nothing binary is committed).

Faces: scikit-image's astronaut, insightface's Tom_Hanks_54745.png (112² aligned crop) and the six
people of insightface's t1.jpg (cropped around dlib HOG detections, numbered left to right). The
insightface package is located with importlib (never imported: it would pull heavy deps).

Targets are synthesised: a face photo moving, zooming and slightly rotating over a textured,
slowly panning background, with a sine audio track, so every part of the pipeline (detection,
tracking, encoding, audio mux) is exercised on known content.
"""
from __future__ import annotations

import importlib.util
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceworker import ffmpeg, frameio, probe
from faceworker.errors import BadInput

# Chosen by measurement (docs/engine.md): t1_2 is the largest face of t1.jpg (≈130 px box) and the most
# frontal one (dlib-landmark yaw ≈ 1°); t1_0 is frontal too but smaller, t1_1/t1_4 are turned ~50°.
DEFAULT_SOURCE = "t1_2"
DEFAULT_TARGET = "astronaut"
T1_MARGIN = 0.6  # crop margin around each t1 face, as a fraction of the detection box size


def insightface_images_dir() -> Path:
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput("sample faces need the insightface wheel installed (pip install --no-deps insightface==2.1)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images"
    if not path.is_dir():
        raise BadInput(f"insightface sample images not found at {path}")
    return path


def _hog_boxes(bgr: np.ndarray, upsample: int = 1) -> list[tuple[int, int, int, int]]:
    import dlib

    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    rects = dlib.get_frontal_face_detector()(gray, upsample)
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]


def _crop(img: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    x0, y0, x1, y1 = box
    m = int(round(margin * max(x1 - x0, y1 - y0)))
    h, w = img.shape[:2]
    return np.ascontiguousarray(img[max(0, y0 - m): min(h, y1 + m), max(0, x0 - m): min(w, x1 + m)])


@lru_cache(maxsize=1)
def _shipped_faces_cached() -> dict[str, np.ndarray]:
    from skimage import data as skdata

    faces: dict[str, np.ndarray] = {}
    photo = skdata.astronaut()  # type: ignore[no-untyped-call]  # scikit-image ships no type hints
    faces["astronaut"] = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2BGR)
    images = insightface_images_dir()
    hanks = cv2.imread(str(images / "Tom_Hanks_54745.png"), cv2.IMREAD_COLOR)
    if hanks is None:
        raise BadInput("cannot read insightface's Tom_Hanks_54745.png")
    faces["tom_hanks"] = hanks
    group = cv2.imread(str(images / "t1.jpg"), cv2.IMREAD_COLOR)
    if group is None:
        raise BadInput("cannot read insightface's t1.jpg")
    boxes = sorted(_hog_boxes(group, upsample=1), key=lambda b: b[0])
    if len(boxes) != 6:
        raise BadInput(f"expected six faces in t1.jpg, dlib HOG found {len(boxes)}")
    for i, box in enumerate(boxes):
        faces[f"t1_{i}"] = _crop(group, box, T1_MARGIN)
    return faces


def shipped_faces() -> dict[str, np.ndarray]:
    """name -> BGR image: astronaut, tom_hanks, t1_0..t1_5 (copies; callers may modify them)."""
    return {k: v.copy() for k, v in _shipped_faces_cached().items()}


# --------------------------------------------------------------------------- synthetic target


def _background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A textured background larger than the frame (it pans): smooth colour noise + soft shapes."""
    bw, bh = int(width * 1.3), int(height * 1.3)
    small = rng.integers(40, 215, size=(max(2, bh // 48), max(2, bw // 48), 3), dtype=np.uint8)
    bg = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 9, size=(bh, bw, 1)).astype(np.float32)
    bg = np.clip(bg.astype(np.float32) + fine, 0, 255).astype(np.uint8)
    for _ in range(14):
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        centre = (int(rng.integers(0, bw)), int(rng.integers(0, bh)))
        if rng.random() < 0.5:
            cv2.circle(bg, centre, int(rng.integers(20, max(21, height // 6))), colour, -1, cv2.LINE_AA)
        else:
            size = (int(rng.integers(30, max(31, width // 5))), int(rng.integers(20, max(21, height // 6))))
            cv2.rectangle(bg, centre, (centre[0] + size[0], centre[1] + size[1]), colour, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(bg, (0, 0), 1.2)


def _face_patch(face_bgr: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    """Crop the photo around its face; return (patch, face-box height in patch pixels)."""
    boxes = _hog_boxes(face_bgr, upsample=1)
    if not boxes and max(face_bgr.shape[:2]) < 400:
        up = cv2.resize(face_bgr, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
        boxes = [(int(b[0] / 3), int(b[1] / 3), int(b[2] / 3), int(b[3] / 3)) for b in _hog_boxes(up, upsample=0)]
    if boxes:
        box = max(boxes, key=lambda b: b[3] - b[1])
        patch = _crop(face_bgr, box, 0.7)
        return patch, float(box[3] - box[1])
    # No detection (e.g. a tight aligned crop): assume the face fills ~60 % of the photo.
    return face_bgr.copy(), 0.6 * face_bgr.shape[0]


def _alpha(h: int, w: int) -> np.ndarray:
    """Feathered elliptical alpha so the photo's rectangle does not form hard edges."""
    a = np.zeros((h, w), np.float32)
    cv2.ellipse(a, (w // 2, h // 2), (int(w * 0.47), int(h * 0.49)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    k = max(3, (min(h, w) // 12) | 1)
    return cv2.GaussianBlur(a, (k, k), 0)[..., None]


def synth_target_frames(
    face_bgr: np.ndarray,
    n: int,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25,
    seed: int = 0,
) -> list[np.ndarray]:
    """`n` BGR frames of `face_bgr` moving/zooming/rotating (±8°) smoothly over a panning background.

    The face box stays about a third of the frame height (≥ 180 px at 720p) so HOG finds it."""
    return list(iter_target_frames(face_bgr, n, size, fps, seed))


def iter_target_frames(face_bgr: np.ndarray, n: int, size: tuple[int, int] = (1280, 720), fps: float = 25,
                       seed: int = 0) -> Iterator[np.ndarray]:
    """Generator form of `synth_target_frames` (constant memory for long/large clips)."""
    width, height = size
    rng = np.random.default_rng(seed)
    bg = _background(width, height, rng)
    patch, face_h = _face_patch(face_bgr, height)
    base_scale = (0.34 * height) / face_h  # face box ≈ 34 % of the frame height
    ph, pw = patch.shape[:2]
    alpha = _alpha(ph, pw)
    patch_f = patch.astype(np.float32)
    phases = rng.uniform(0, 2 * math.pi, 5)
    periods = rng.uniform(3.0, 6.0, 5)
    for i in range(n):
        t = i / float(fps)
        w = [2 * math.pi * t / p + ph0 for p, ph0 in zip(periods, phases)]
        cx = width * (0.5 + 0.18 * math.sin(w[0]))
        cy = height * (0.5 + 0.08 * math.sin(w[1]))
        scale = base_scale * (1.0 + 0.12 * math.sin(w[2]))
        angle = 8.0 * math.sin(w[3])
        pan_x = int((bg.shape[1] - width) * (0.5 + 0.5 * math.sin(w[4])))
        pan_y = int((bg.shape[0] - height) * 0.5)
        frame = bg[pan_y: pan_y + height, pan_x: pan_x + width].astype(np.float32)
        m = cv2.getRotationMatrix2D((pw / 2.0, ph / 2.0), angle, scale)
        m[0, 2] += cx - pw / 2.0
        m[1, 2] += cy - ph / 2.0
        warped = cv2.warpAffine(patch_f, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
        a = cv2.warpAffine(alpha, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
        frame = frame * (1.0 - a) + warped * a
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def write_target_video(frames: Iterable[np.ndarray], path: str | os.PathLike[str], fps: float, size: tuple[int, int],
                       seconds: float, audio: bool = True, crf: int = 18) -> probe.Probe:
    """Encode frames to H.264 MP4 and add a sine audio track (AAC) of the same duration."""
    width, height = size
    path = str(path)
    with tempfile.TemporaryDirectory(prefix="sample-", dir=os.path.dirname(os.path.abspath(path))) as tmpd:
        silent = os.path.join(tmpd, "video.mp4")
        with frameio.FrameWriter(silent, fps, width, height, crf=crf, preset="veryfast") as writer:
            for frame in frames:
                writer.write(frame)
        if audio:
            ffmpeg.run_ffmpeg(
                ["-i", silent, "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
                 "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "96k",
                 "-movflags", "+faststart", path + ".tmp.mp4"],
                "sample audio mux",
            )
            os.replace(path + ".tmp.mp4", path)
        else:
            os.replace(silent, path)
    return probe.probe(path)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise BadInput(f"bad size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720") from exc
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise BadInput(f"bad size {text!r}: both sides even and >= 64")
    return w, h


def build_sample_order(
    out_dir: str | os.PathLike[str],
    source: str = DEFAULT_SOURCE,
    target: str = DEFAULT_TARGET,
    seconds: float = 4,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25,
    seed: int = 0,
) -> dict[str, Any]:
    """Write `out_dir/source.png` and `out_dir/target.mp4` (with audio); return paths and the probe."""
    faces = _shipped_faces_cached()
    for name in (source, target):
        if name not in faces:
            raise BadInput(f"unknown sample face {name!r}; choose from {', '.join(sorted(faces))}")
    if seconds <= 0:
        raise BadInput("seconds must be > 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src_path = out / "source.png"
    if not cv2.imwrite(str(src_path), faces[source]):
        raise BadInput(f"cannot write {src_path}")
    n = int(round(seconds * fps))
    frames = iter_target_frames(faces[target], n, size, fps, seed)
    tgt_path = out / "target.mp4"
    pr = write_target_video(frames, tgt_path, fps, size, n / float(fps))
    return {"source": str(src_path), "target": str(tgt_path), "source_face": source, "target_face": target,
            "frames": pr.frames, "fps": float(pr.fps), "size": [pr.width, pr.height],
            "audio": bool(pr.audio)}
