"""Model packs: a directory with manifest.json naming ONNX (or .pth) models by role, checked before use.

Users bring FaceFusion-style weights we cannot ship; a wrong, truncated or swapped file must fail
at load time with a message the customer can act on (BadInput, exit 2), not as garbage frames.

Layout: `<model_dir>/<pack>/manifest.json` + the model files beside it. See docs/model-packs.md.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceworker import settings
from faceworker.errors import BadInput
from faceworker.spec import sha256_file as _sha256_stream

ROLES = ("swapper", "recognizer", "enhancer")
FORMATS = ("onnx", "pth")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HASH_CACHE: dict[tuple[str, int, int], str] = {}

Shape = list[int | str | None]


def default_model_dir() -> Path:
    """FACEFACTORY_MODEL_DIR, else $FACEFACTORY_HOME/models (contracts.md)."""
    env = settings.raw("FACEFACTORY_MODEL_DIR")
    if env:
        return Path(env)
    home = settings.raw("FACEFACTORY_HOME")
    if home:
        return Path(home) / "models"
    return Path(__file__).resolve().parents[3] / "var" / "models"


@dataclass
class ModelSpec:
    """One model of a pack, as declared in the manifest."""

    role: str
    file: str
    path: Path
    sha256: str
    format: str = "onnx"
    inputs: dict[str, Shape] = field(default_factory=dict)
    outputs: dict[str, Shape] = field(default_factory=dict)
    size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pack:
    name: str
    version: str
    root: Path
    models: list[ModelSpec]

    def get(self, role: str, fmt: str | None = None) -> ModelSpec | None:
        for spec in self.models:
            if spec.role == role and (fmt is None or spec.format == fmt):
                return spec
        return None

    def require(self, role: str, fmt: str | None = None) -> ModelSpec:
        spec = self.get(role, fmt)
        if spec is None:
            what = f"{role} ({fmt})" if fmt else role
            raise BadInput(f"model pack {self.name!r} ({self.root}) has no {what} model in manifest.json")
        return spec


def sha256_file(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so a 500 MB model is hashed once per process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = _sha256_stream(path)
    return _HASH_CACHE[key]


def _shape(where: str, raw: Any) -> Shape:
    if not isinstance(raw, list) or not raw:
        raise BadInput(f"{where}: shape must be a non-empty list, got {raw!r}")
    for dim in raw:
        if not (dim is None or isinstance(dim, str) or (isinstance(dim, int) and not isinstance(dim, bool) and dim > 0)):
            raise BadInput(f"{where}: bad dimension {dim!r} (positive int, name or null)")
    return list(raw)


def _io(where: str, raw: Any, required: bool) -> dict[str, Shape]:
    if raw is None and not required:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise BadInput(f"{where}: expected an object {{name: shape}}, got {raw!r}")
    return {str(k): _shape(f"{where}.{k}", v) for k, v in raw.items()}


def _model(pack_dir: Path, index: int, raw: Any, verify_hash: bool) -> ModelSpec:
    where = f"{pack_dir / 'manifest.json'}: models[{index}]"
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: expected an object")
    role = raw.get("role")
    if role not in ROLES:
        raise BadInput(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
    file = raw.get("file")
    if not isinstance(file, str) or not file:
        raise BadInput(f"{where}: 'file' is missing")
    path = (pack_dir / file).resolve()
    if pack_dir.resolve() not in path.parents:
        raise BadInput(f"{where}: file {file!r} must lie inside the pack directory")
    if not path.is_file():
        raise BadInput(f"{where}: model file {path} does not exist")
    fmt = raw.get("format") or ("pth" if path.suffix in (".pth", ".pt") else "onnx")
    if fmt not in FORMATS:
        raise BadInput(f"{where}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    digest = raw.get("sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise BadInput(f"{where}: 'sha256' must be the file's 64-hex sha256 (sha256sum {file})")
    if verify_hash:
        actual = sha256_file(path)
        if actual != digest.lower():
            raise BadInput(f"{where}: sha256 mismatch for {file}: manifest {digest.lower()}, file {actual} "
                           "(corrupt or different model)")
    size = raw.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        raise BadInput(f"{where}: 'size' must be a positive int")
    known = {"role", "file", "format", "sha256", "inputs", "outputs", "size"}
    return ModelSpec(
        role=role, file=file, path=path, sha256=digest.lower(), format=fmt,
        inputs=_io(f"{where}.inputs", raw.get("inputs"), fmt == "onnx"),
        outputs=_io(f"{where}.outputs", raw.get("outputs"), fmt == "onnx"),
        size=size, extra={k: v for k, v in raw.items() if k not in known},
    )


def load_pack(model_dir: str | Path | None, name: str, *, verify_hash: bool = True) -> Pack:
    """Read and validate `<model_dir>/<name>/manifest.json` (files exist, hashes match)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise BadInput(f"model pack name {name!r} is invalid (letters, digits, . _ -)")
    base = Path(model_dir) if model_dir else default_model_dir()
    pack_dir = base / name
    manifest = pack_dir / "manifest.json"
    if not manifest.is_file():
        available = sorted(p.name for p in base.iterdir() if (p / "manifest.json").is_file()) if base.is_dir() else []
        raise BadInput(f"model pack {name!r} not found: no {manifest} "
                       f"(model dir {base}; packs there: {', '.join(available) or 'none'})")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{manifest}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{manifest}: expected a JSON object")
    if data.get("name", name) != name:
        raise BadInput(f"{manifest}: name {data.get('name')!r} does not match the directory {name!r}")
    models_raw = data.get("models")
    if not isinstance(models_raw, list) or not models_raw:
        raise BadInput(f"{manifest}: 'models' must be a non-empty list")
    models = [_model(pack_dir, i, raw, verify_hash) for i, raw in enumerate(models_raw)]
    seen: set[tuple[str, str]] = set()
    for spec in models:
        key = (spec.role, spec.format)
        if key in seen:
            raise BadInput(f"{manifest}: more than one {spec.role} model in format {spec.format}")
        seen.add(key)
    return Pack(name=name, version=str(data.get("version", "")), root=pack_dir, models=models)


def _dims_match(declared: Shape, actual: list[Any]) -> bool:
    if len(declared) != len(actual):
        return False
    for d, a in zip(declared, actual):
        if isinstance(d, int) and isinstance(a, int) and d != a:
            return False
    return True


def verify_io(spec: ModelSpec, session: Any) -> None:
    """The session's input/output names and fixed dims must be what the manifest declares."""
    for kind, declared, actual_list in (
        ("input", spec.inputs, session.get_inputs()),
        ("output", spec.outputs, session.get_outputs()),
    ):
        actual = {a.name: list(a.shape) for a in actual_list}
        if set(actual) != set(declared):
            raise BadInput(f"{spec.file} ({spec.role}): {kind} names {sorted(actual)} do not match the manifest's "
                           f"{sorted(declared)}")
        for nm, shape in declared.items():
            if not _dims_match(shape, actual[nm]):
                raise BadInput(f"{spec.file} ({spec.role}): {kind} {nm!r} has shape {actual[nm]}, manifest says {shape}")


def open_onnx(spec: ModelSpec, config: Any = None) -> Any:
    """InferenceSession for a pack model, its I/O checked against the manifest."""
    from faceworker.onnx_runtime import create_session, require_float32

    if spec.format != "onnx":
        raise BadInput(f"{spec.file} ({spec.role}) is a {spec.format} file, not ONNX")
    session = create_session(spec.path, config, role=spec.role)
    verify_io(spec, session)
    require_float32(session, f"{spec.file} ({spec.role})")
    return session


def describe_onnx(path: Path) -> tuple[dict[str, Shape], dict[str, Shape]]:
    """Input/output names and shapes of an ONNX file, as a manifest would declare them."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}

    def dims(vi: Any) -> Shape:
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in vi.type.tensor_type.shape.dim]

    ins = {vi.name: dims(vi) for vi in model.graph.input if vi.name not in inits}
    outs = {vi.name: dims(vi) for vi in model.graph.output}
    return ins, outs


def write_manifest(pack_dir: str | Path, name: str, models: dict[str, str], version: str = "1",
                   extra: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write manifest.json for files already in `pack_dir` ({role: file}); hashes and I/O read from the files."""
    pack_dir = Path(pack_dir)
    entries = []
    for role, file in models.items():
        path = pack_dir / file
        entry: dict[str, Any] = {"role": role, "file": file, "sha256": sha256_file(path)}
        if path.suffix == ".onnx":
            entry["inputs"], entry["outputs"] = describe_onnx(path)
        else:
            entry["format"] = "pth"
        entry.update((extra or {}).get(role, {}))
        entries.append(entry)
    out = pack_dir / "manifest.json"
    out.write_text(json.dumps({"name": name, "version": version, "models": entries}, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m faceworker.packs make DIR --swapper F --recognizer F --enhancer F`: write a manifest."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m faceworker.packs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write manifest.json for model files already in a pack directory")
    mk.add_argument("pack_dir")
    for role in ROLES:
        mk.add_argument(f"--{role}", help=f"{role} model file name inside the pack dir")
    mk.add_argument("--version", default="1")
    ck = sub.add_parser("check", help="validate a pack (hashes, files, I/O against onnxruntime)")
    ck.add_argument("name")
    ck.add_argument("--model-dir")
    args = ap.parse_args(argv)
    if args.cmd == "make":
        pack_dir = Path(args.pack_dir)
        models = {r: getattr(args, r) for r in ROLES if getattr(args, r)}
        if not models:
            ap.error("name at least one of --swapper/--recognizer/--enhancer")
        path = write_manifest(pack_dir, pack_dir.name, models, args.version)
        print(json.dumps({"manifest": str(path)}))
        return 0
    try:
        pack = load_pack(args.model_dir, args.name)
        for spec in pack.models:
            if spec.format == "onnx":
                open_onnx(spec)
    except BadInput as exc:
        print(json.dumps({"pack": args.name, "ok": False, "error": str(exc)}))
        return exc.exit_code
    print(json.dumps({"pack": pack.name, "models": [m.file for m in pack.models], "ok": True}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
