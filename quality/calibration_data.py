"""Offline identity data for calibration: faces that ship in installed PyPI packages + augmented views.

Identities: scikit-image's astronaut, the six people of insightface's ``t1.jpg``, insightface's
``Tom_Hanks_54745.png``, matplotlib's ``grace_hopper.jpg``. insightface is located with
``importlib.util.find_spec`` and never imported (it is installed without its dependencies).
Each identity contributes several augmented views (flip, crop, scale, lighting, JPEG, small
rotation, blur, noise): same-person pairs are pairs of views of one identity.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np


@dataclass
class FaceSet:
    """Embeddings of augmented views, labelled by identity."""

    recognizer: str
    embeddings: np.ndarray  # float64 [N, D]
    labels: np.ndarray  # int [N]
    names: list[str]  # identity name per label
    views: list[str]  # augmentation description per row


def _pkg_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _read(path: Path) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    return img


def source_images() -> list[tuple[str, np.ndarray, str]]:
    """(name, BGR image, face pick) for every offline photo; pick is 'largest' or 'left<k>'."""
    out: list[tuple[str, np.ndarray, str]] = []
    sk = _pkg_dir("skimage")
    if sk and (img := _read(sk / "data" / "astronaut.png")) is not None:
        out.append(("astronaut", img, "largest"))
    ins = _pkg_dir("insightface")
    if ins:
        t1 = _read(ins / "data" / "images" / "t1.jpg")
        if t1 is not None:
            out.extend((f"t1_person{k}", t1, f"left{k}") for k in range(6))
        hanks = _read(ins / "data" / "images" / "Tom_Hanks_54745.png")
        if hanks is not None:
            # a tight 112² aligned crop: pad and enlarge so HOG sees a whole head
            big = cv2.resize(hanks, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
            out.append(("tom_hanks", cv2.copyMakeBorder(big, 120, 120, 120, 120, cv2.BORDER_REPLICATE), "largest"))
    mpl = _pkg_dir("matplotlib")
    if mpl and (img := _read(mpl / "mpl-data" / "sample_data" / "grace_hopper.jpg")) is not None:
        out.append(("grace_hopper", img, "largest"))
    return out


def _face_crop(analyzer, img: np.ndarray, pick: str) -> np.ndarray | None:
    faces = analyzer.detect(img)
    if not faces:
        return None
    if pick.startswith("left"):
        faces = sorted(faces, key=lambda f: f.bbox[0])
        k = int(pick[4:])
        if k >= len(faces):
            return None
        face = faces[k]
    else:
        face = faces[0]
    x0, y0, x1, y1 = face.bbox
    s = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = int(1.3 * s)
    pad = cv2.copyMakeBorder(img, half, half, half, half, cv2.BORDER_REFLECT)
    crop = pad[int(cy):int(cy) + 2 * half, int(cx):int(cx) + 2 * half]
    # normalise the face to ~150 px: the size dlib's chip is cut at
    scale = 150.0 / s
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def augment(crop: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One random view: always a random crop/scale, plus 1-3 photometric/geometric changes."""
    h, w = crop.shape[:2]
    img = crop
    desc = []
    ops = rng.choice(["flip", "rotate", "light", "jpeg", "blur", "noise", "gamma"], size=rng.integers(1, 4),
                     replace=False)
    if "flip" in ops:
        img = cv2.flip(img, 1)
        desc.append("flip")
    if "rotate" in ops:
        ang = float(rng.uniform(-12, 12))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, 1.0)
        img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        desc.append(f"rot{ang:+.0f}")
    scale = float(rng.uniform(0.55, 1.6))
    dx, dy = (rng.uniform(-0.08, 0.08, size=2) * w).astype(int)
    m = np.array([[scale, 0, (1 - scale) * w / 2 + dx], [0, scale, (1 - scale) * h / 2 + dy]], np.float32)
    img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    desc.append(f"scale{scale:.2f}")
    if "light" in ops:
        a, b = float(rng.uniform(0.6, 1.4)), float(rng.uniform(-35, 35))
        img = cv2.convertScaleAbs(img, alpha=a, beta=b)
        desc.append(f"light{a:.1f}{b:+.0f}")
    if "gamma" in ops:
        g = float(rng.uniform(0.6, 1.6))
        lut = np.clip(((np.arange(256) / 255.0) ** g) * 255, 0, 255).astype(np.uint8)
        img = cv2.LUT(img, lut)
        desc.append(f"gamma{g:.1f}")
    if "blur" in ops:
        k = int(rng.choice([3, 5]))
        img = cv2.GaussianBlur(img, (k, k), 0)
        desc.append(f"blur{k}")
    if "noise" in ops:
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        desc.append("noise")
    if "jpeg" in ops:
        q = int(rng.integers(25, 80))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        img = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR))  # our own JPEG: always decodes
        desc.append(f"jpeg{q}")
    return np.ascontiguousarray(img), "+".join(desc)


def build_faceset(views_per_identity: int = 40, seed: int = 0, analyzer=None) -> FaceSet:
    """Embed the original and ``views_per_identity`` augmented views of every offline identity."""
    if analyzer is None:
        from faceworker.faces import FaceAnalyzer

        analyzer = FaceAnalyzer(detect_scale=1.0, upsample=1)
    rng = np.random.default_rng(seed)
    embs: list[Any] = []
    labels: list[Any] = []
    names: list[str] = []
    views: list[Any] = []
    for name, img, pick in source_images():
        crop = _face_crop(analyzer, img, pick)
        if crop is None:
            continue
        label = len(names)
        got = 0
        for k in range(views_per_identity * 2):
            if got > views_per_identity:
                break
            view, desc = (crop, "original") if k == 0 else augment(crop, rng)
            faces = analyzer.detect(view)
            if not faces:
                continue
            embs.append(analyzer.recognizer.embed(view, faces[0]).astype(np.float64))
            labels.append(label)
            views.append(desc)
            got += 1
        if got:
            names.append(name)
    return FaceSet(recognizer=analyzer.recognizer.name, embeddings=np.asarray(embs), labels=np.asarray(labels),
                   names=names, views=views)
