"""Face detection, 68-point landmarks and the dlib ResNet identity embedding.

HOG detection runs on a downscaled frame (30 ms instead of 119 ms per 1080p frame, DESIGN §7)
and falls back to full scale, then to upsampling, when it finds nothing; landmarks always run
on the full-resolution frame, so downscaling costs no landmark precision.
"""
from __future__ import annotations

from typing import Any

import cv2
import dlib
import numpy as np

from faceworker import models
from faceworker.geometry import estimate_yaw_deg, landmark_bbox
from faceworker.types import Face


def _to_gray(bgr: np.ndarray) -> np.ndarray:
    if bgr.ndim == 2:
        return bgr
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)


def _rect(bbox: tuple[int, int, int, int]) -> dlib.rectangle:
    x0, y0, x1, y1 = (int(v) for v in bbox)
    return dlib.rectangle(x0, y0, x1, y1)


def prominence(face: Face) -> float:
    """Size, nudged by HOG confidence: of two similar-sized boxes the real face usually scores higher
    (a 0.2-score background false positive once out-sized a 0.5-score face by one pixel)."""
    return face.size * (1.0 + 0.5 * min(max(face.score, 0.0), 1.0))


class DlibRecognizer:
    """dlib ResNet 128-D embedding (dlib_face_recognition_resnet_model_v1)."""

    name = "dlib_resnet_v1"
    dim = 128

    def __init__(self, jitter: int = 0) -> None:
        self.jitter = jitter

    @staticmethod
    def load() -> None:
        """Load the ResNet model now (~0.2 s, once a process) rather than inside the first frame."""
        models.face_recognizer()

    @staticmethod
    def _crop_shape(image_bgr: np.ndarray, face: Face) -> tuple[np.ndarray, dlib.full_object_detection]:
        """The RGB crop around the face and its 68 landmarks in crop coordinates (what dlib aligns)."""
        lm = np.asarray(face.landmarks, np.float32)
        x0, y0, x1, y1 = landmark_bbox(lm)
        pad = int(max(x1 - x0, y1 - y0))
        h, w = image_bgr.shape[:2]
        cx0, cy0 = max(0, x0 - pad), max(0, y0 - pad)
        cx1, cy1 = min(w, x1 + pad), min(h, y1 + pad)
        crop = np.ascontiguousarray(cv2.cvtColor(image_bgr[cy0:cy1, cx0:cx1], cv2.COLOR_BGR2RGB))
        local = lm - [cx0, cy0]
        bx0, by0, bx1, by1 = landmark_bbox(local)
        shape = dlib.full_object_detection(
            dlib.rectangle(bx0, by0, bx1, by1), [dlib.point(int(round(x)), int(round(y))) for x, y in local]
        )
        return crop, shape

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """Embed on a crop around the face only: dlib aligns a 150² chip, the rest is wasted work."""
        crop, shape = self._crop_shape(image_bgr, face)
        vec = models.face_recognizer().compute_face_descriptor(crop, shape, self.jitter)
        return np.asarray(vec, np.float32)

    def chip(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """The aligned 150² RGB chip that `embed` feeds the network (dlib's own get_face_chip with the
        same crop, landmarks, size and padding): `chip_descriptor(chip)` equals `embed` bit for bit
        when jitter is 0, and a chip is small enough (67 KB) to send to another process."""
        if self.jitter:
            raise ValueError("chips are only equivalent to embed() without jitter")
        crop, shape = self._crop_shape(image_bgr, face)
        return np.asarray(dlib.get_face_chip(crop, shape, size=CHIP_SIZE, padding=CHIP_PADDING))


CHIP_SIZE, CHIP_PADDING = 150, 0.25  # dlib's compute_face_descriptor(img, shape) defaults


def chip_descriptor(chip: np.ndarray) -> tuple[np.ndarray, float]:
    """(128-D descriptor, ms it took) of one aligned chip; runs in ChipEmbedder's worker processes."""
    import time

    t0 = time.perf_counter()
    vec = np.asarray(models.face_recognizer().compute_face_descriptor(chip), np.float32)
    return vec, (time.perf_counter() - t0) * 1e3


class DeferredEmbedding:
    """A face's dlib descriptor, computed on first use from the aligned chip cut when the face was
    seen (67 KB, ~0.3 ms to cut).

    Why: the tracker keeps its face's identity for the rare detection where overlap cannot decide
    (a cut, two faces), and the metrics pass needs it once per track; computing it when the track
    starts cost ~60 ms of the swap pass in every chunk, usually for nothing there."""

    def __init__(self, chip: np.ndarray) -> None:
        self.chip = chip
        self._value: np.ndarray | None = None
        self._future: Any = None

    def value(self) -> np.ndarray:
        if self._value is None:
            self._value = self._future.result()[0] if self._future is not None else chip_descriptor(self.chip)[0]
        return self._value

    def known(self) -> np.ndarray | None:
        """The descriptor if something already computed it, else None (computes nothing)."""
        return self._value

    def future(self, embedder: ChipEmbedder) -> Any:
        """A Future of (descriptor, ms), submitted to `embedder` once however often it is asked."""
        if self._future is None:
            if self._value is not None:
                import concurrent.futures

                self._future = concurrent.futures.Future()
                self._future.set_result((self._value, 0.0))
            else:
                self._future = embedder.submit(self.chip)
        return self._future


def embedding_vector(embedding: np.ndarray | DeferredEmbedding | None) -> np.ndarray | None:
    """The embedding as an array, computing a deferred one now."""
    return embedding.value() if isinstance(embedding, DeferredEmbedding) else embedding


def _load_recognizer() -> None:
    from faceworker.lifeline import watch_parent

    watch_parent()  # a killed chunk takes its descriptor workers with it
    models.face_recognizer()


class ChipEmbedder:
    """dlib ResNet descriptors of face chips in a pool of worker processes.

    The descriptor is ~65-90 ms per face on this CPU (no BLAS in dlib-bin) and dlib holds the GIL,
    so threads cannot overlap it with the rest of the metrics pass; processes can. With
    `workers=0` the descriptors are computed inline (same values)."""

    def __init__(self, workers: int) -> None:
        self.workers = max(0, int(workers))
        self._pool = None
        if self.workers:
            import concurrent.futures
            import multiprocessing

            # spawn, not fork: the parent runs reader/writer threads, and forked locks can deadlock
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_load_recognizer)
            self._start_workers()

    def _start_workers(self) -> None:
        """Start every worker now (spawn + model load take ~1 s), with the caller's __main__ hidden.

        spawn re-runs the parent's main script in each child unless it is guarded by
        `if __name__ == "__main__"` (and fails outright for `python -`): a script calling run_chunk
        at top level would run a second chunk in every worker. The workers need nothing from
        __main__ (chip_descriptor is imported from this module), so a bare module stands in for it
        while the pool starts its processes (all of them at the first submit, in Python 3.11)."""
        import sys
        import types

        assert self._pool is not None
        real_main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            warm = [self._pool.submit(_load_recognizer) for _ in range(self.workers)]
        finally:
            sys.modules["__main__"] = real_main
        del warm  # not waited for: the model loads while the caller carries on

    def submit(self, chip: np.ndarray) -> Any:
        """A concurrent.futures.Future of chip_descriptor(chip) (already done when inline)."""
        if self._pool is None:
            import concurrent.futures

            fut: concurrent.futures.Future[tuple[np.ndarray, float]] = concurrent.futures.Future()
            fut.set_result(chip_descriptor(chip))
            return fut
        return self._pool.submit(chip_descriptor, chip)

    def close(self) -> None:
        """Stop the workers (and wait for them, so their CPU time is accounted to this process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ChipEmbedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaceAnalyzer:
    """Detects faces and their landmarks; `.recognizer` embeds them."""

    def __init__(
        self,
        detect_scale: float = 0.5,
        upsample: int = 0,
        redetect_every: int = 5,
        min_score: float = 0.0,
        recognizer: DlibRecognizer | None = None,
    ) -> None:
        self.detect_scale = float(detect_scale)
        self.upsample = int(upsample)
        self.redetect_every = int(redetect_every)  # FaceTracker: a HOG pass confirms a track at least this often
        self.min_score = float(min_score)
        self.recognizer = recognizer or DlibRecognizer()
        self._detector = models.hog_detector()
        self._predictor = models.shape_predictor_68()

    # -- detection -------------------------------------------------------------------------
    def _detect_rects(self, gray: np.ndarray, scale: float, upsample: int) -> list[tuple[tuple[int, int, int, int], float]]:
        img = gray
        if scale != 1.0:
            img = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        rects, scores, _ = self._detector.run(img, upsample, self.min_score)
        out = []
        for r, s in zip(rects, scores):
            bbox = (int(r.left() / scale), int(r.top() / scale), int(r.right() / scale), int(r.bottom() / scale))
            out.append((bbox, float(s)))
        return out

    def detect_boxes(self, bgr: np.ndarray, scale: float | None = None,
                     fallbacks: bool = True) -> list[tuple[tuple[int, int, int, int], float]]:
        """Boxes + HOG scores: downscaled first, then (with `fallbacks`) full scale, then one upsampling."""
        gray = _to_gray(bgr)
        scale = self.detect_scale if scale is None else scale
        tries = []
        if scale < 1.0:
            tries.append((scale, self.upsample))
            if not fallbacks:
                return self._detect_rects(gray, scale, self.upsample)
        tries.append((1.0, self.upsample))
        if self.upsample == 0 and gray.shape[0] * gray.shape[1] <= 1920 * 1080:
            tries.append((1.0, 1))  # last resort; an upsampled pass above 1080p costs seconds
        for scale, up in tries:
            found = self._detect_rects(gray, scale, up)
            if found:
                return found
        return []

    def detect_near(self, bgr_or_gray: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.8,
                    face_px: float = 100.0, upsample_small: bool = False,
                    ) -> tuple[tuple[int, int, int, int], float] | None:
        """Re-detect one face in a window around `box`, scaled so the face is ~face_px wide.

        Costs a few ms instead of a full-frame pass, and unlike re-running only the landmark
        predictor (which returns a face-like shape anywhere) it says when the face is gone.
        """
        gray = _to_gray(bgr_or_gray)
        h, w = gray.shape[:2]
        x0, y0, x1, y1 = box
        s = max(x1 - x0, y1 - y0, 1)
        cx0, cy0 = max(0, int(x0 - margin * s)), max(0, int(y0 - margin * s))
        cx1, cy1 = min(w, int(x1 + margin * s)), min(h, int(y1 + margin * s))
        if cx1 - cx0 < 40 or cy1 - cy0 < 40:
            return None
        scale = min(1.0, face_px / s)
        crop = gray[cy0:cy1, cx0:cx1]
        found = self._detect_rects(np.ascontiguousarray(crop), scale, 0)
        if not found and scale < 1.0:
            found = self._detect_rects(np.ascontiguousarray(crop), min(1.0, 1.4 * scale), 0)
        if not found and upsample_small and s < face_px:
            # HOG finds nothing under ~80 px: a small face is looked for in the window upsampled,
            # as a full detection's fallback does (cheap: the window is small too)
            found = self._detect_rects(np.ascontiguousarray(crop), 1.0, 1)
        if not found:
            return None
        centre = np.array([(x0 + x1) / 2 - cx0, (y0 + y1) / 2 - cy0])
        (bx0, by0, bx1, by1), score = min(
            found, key=lambda b: float(np.hypot((b[0][0] + b[0][2]) / 2 - centre[0], (b[0][1] + b[0][3]) / 2 - centre[1]))
        )
        return (bx0 + cx0, by0 + cy0, bx1 + cx0, by1 + cy0), score

    def landmarks(self, bgr_or_gray: np.ndarray, bbox: tuple[int, int, int, int]) -> np.ndarray:
        """68 points in `bbox`: ~0.5 ms when called repeatedly, ~1.8 ms in the swap pass (each call
        walks thousands of regression trees of a ~100 MB model, so it is bound by memory and
        slows down when the swap between two calls has evicted the caches; measured at 720p)."""
        gray = _to_gray(bgr_or_gray)
        shape = self._predictor(gray, _rect(bbox))
        return np.asarray([(p.x, p.y) for p in shape.parts()], np.float32)

    def detect(self, bgr: np.ndarray, scale: float | None = None, landmarks: bool = True,
               fallbacks: bool = True) -> list[Face]:
        """All faces, most prominent (largest, then most confident) first, with full-resolution
        landmarks (`scale` overrides detect_scale).

        With `landmarks=False` each face carries an empty (0, 2) landmark array until
        `with_landmarks` fills it: a tracker that picks one face by its box saves the predictor
        (~0.7-2 ms, memory-bound) on every other face."""
        gray = _to_gray(bgr)
        faces = []
        for bbox, score in self.detect_boxes(gray, scale, fallbacks):
            lm = self.landmarks(gray, bbox) if landmarks else np.zeros((0, 2), np.float32)
            faces.append(Face(bbox=bbox, landmarks=lm, score=score))
        faces.sort(key=lambda f: -prominence(f))
        return faces

    def with_landmarks(self, bgr_or_gray: np.ndarray, face: Face) -> Face:
        """`face` with its landmarks computed if `detect(..., landmarks=False)` left them out."""
        if len(face.landmarks) == 0:
            face.landmarks = self.landmarks(bgr_or_gray, face.bbox)
        return face

    def embed(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        emb = self.recognizer.embed(bgr, face)
        face.embedding = emb
        return emb

    def embed_later(self, bgr: np.ndarray, face: Face) -> None:
        """Give `face` an embedding computed on first use (DeferredEmbedding) where the recognizer
        allows it (dlib without jitter: the chip is equivalent), else compute it now."""
        if isinstance(self.recognizer, DlibRecognizer) and not self.recognizer.jitter:
            face.embedding = DeferredEmbedding(self.recognizer.chip(bgr, face))
        else:
            self.embed(bgr, face)

    @staticmethod
    def yaw_deg(face: Face) -> float:
        return estimate_yaw_deg(np.asarray(face.landmarks, np.float32))
