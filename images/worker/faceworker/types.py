"""Shared engine data types: the seams between detection, swapping, enhancing and metrics."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from faceworker.faces import DeferredEmbedding


@dataclass
class Face:
    """One detected face in one image, in that image's pixel coordinates."""

    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1
    landmarks: np.ndarray  # float32 [68, 2] (dlib 68-point order)
    score: float = 1.0
    # recognizer embedding, filled on demand; a DeferredEmbedding computes it on first use
    embedding: np.ndarray | DeferredEmbedding | None = None

    @property
    def size(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return float(max(x1 - x0, y1 - y0))


@dataclass
class SourceFace:
    """The order's source face: the photo, its face, and its identity embeddings."""

    image_bgr: np.ndarray
    face: Face
    embedding: np.ndarray  # default recognizer (dlib 128-D)
    extra_embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. "arcface" 512-D
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Recognizer(Protocol):
    """Identity embedding of a face; the gate compares source and swapped with the same one."""

    name: str
    dim: int

    def embed(self, image_bgr: np.ndarray, face: Face) -> np.ndarray: ...


@runtime_checkable
class FaceSwapper(Protocol):
    """Replaces one target face in a frame by the prepared source identity.

    A swapper may also offer `region(target, (h, w)) -> (x0, y0, x1, y1)`: the only box its swap
    reads or writes. The swap pass then converts just that box of the I420 frame to BGR and hands
    `swap` the crop (landmarks shifted), instead of the whole frame (faceworker.frames).
    """

    name: str

    def prepare(self, source: SourceFace) -> None: ...

    def swap(self, frame_bgr: np.ndarray, target: Face) -> tuple[np.ndarray, np.ndarray]:
        """Return (new frame, uint8 mask 0..255 of the pixels the swap may have changed)."""
        ...


@runtime_checkable
class Enhancer(Protocol):
    """Restores detail of a swapped face region (GFPGAN-style)."""

    name: str

    def enhance(self, frame_bgr: np.ndarray, target: Face, mask: np.ndarray) -> np.ndarray: ...
