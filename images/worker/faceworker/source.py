"""Turn the order's source photo into a SourceFace, refusing photos that cannot work."""
from __future__ import annotations

import numpy as np

from faceworker.errors import BadInput
from faceworker.faces import FaceAnalyzer
from faceworker.types import Face, Recognizer, SourceFace

# Above this |yaw| the frontal-face warp produces a visibly broken face; warn, don't fail.
MAX_FRONTAL_YAW_DEG = 30.0


def _pick(faces: list[Face], selector: str) -> Face:
    if not faces:
        raise BadInput("no face found in the source photo: use a clear, frontal, well-lit photo of one person")
    if selector == "only":
        if len(faces) > 1:
            raise BadInput(
                f"{len(faces)} faces found in the source photo: crop it to one person, "
                "or choose selector 'largest' to use the largest face"
            )
        return faces[0]
    if selector == "largest":
        return max(faces, key=lambda f: f.size)
    raise BadInput(f"unknown source face selector {selector!r} (expected 'only' or 'largest')")


def load_source_face(
    image_bgr: np.ndarray,
    selector: str = "only",
    recognizer: Recognizer | None = None,
    analyzer: FaceAnalyzer | None = None,
) -> SourceFace:
    """Detect (at full scale, with upsampling fallback), embed and sanity-check the source face."""
    if image_bgr is None or not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.size == 0:
        raise BadInput("the source photo could not be decoded as an image")
    if analyzer is None:
        analyzer = FaceAnalyzer(detect_scale=1.0, upsample=0)
    faces = analyzer.detect(image_bgr)
    face = _pick(faces, selector)
    rec = recognizer or analyzer.recognizer
    emb = np.asarray(rec.embed(image_bgr, face), np.float32)
    face.embedding = emb
    warnings: list[str] = []
    yaw = FaceAnalyzer.yaw_deg(face)
    if abs(yaw) > MAX_FRONTAL_YAW_DEG:
        warnings.append("extreme_yaw_source")
    if face.size < 80:
        warnings.append("small_source_face")
    src = SourceFace(image_bgr=np.ascontiguousarray(image_bgr), face=face, embedding=emb, warnings=warnings)
    if rec.name != "dlib_resnet_v1":
        src.extra_embeddings[rec.name] = emb
    return src


def source_yaw_deg(source: SourceFace) -> float:
    return FaceAnalyzer.yaw_deg(source.face)
