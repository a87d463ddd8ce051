"""Make onnxruntime-gpu's CUDA provider small enough to carry to an offline GPU machine.

A device call carries at most 64 MiB, and libonnxruntime_providers_cuda.so is 284 MB (186 MB as xz),
almost all of it GPU code for six architectures in its `.nv_fatbin` section. This zeroes the payload
of every fatbin entry except the SASS of one architecture (sm_90 for H100/H200): the entry headers
stay, so the driver still picks the kept one, and the zeroed bytes compress to nothing (52 MB as xz).
The library is only good for that architecture afterwards: a benchmark aid, never a shipped build.

    python benchmarks/device/fatbin_keep_arch.py --list LIB
    python benchmarks/device/fatbin_keep_arch.py LIB --keep 90 -o OUT.so
"""
from __future__ import annotations

import argparse
import collections
import struct
import subprocess
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
KIND_ELF = 2  # 1 = PTX, 2 = ELF (SASS)


def fatbin_section(lib: Path) -> tuple[int, int]:
    """(file offset, size) of `.nv_fatbin`, read from `readelf -S`."""
    out = subprocess.run(["readelf", "-S", "-W", str(lib)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if ".nv_fatbin" in line:
            fields = line.split("]", 1)[1].split()
            return int(fields[3], 16), int(fields[4], 16)
    raise SystemExit(f"{lib}: no .nv_fatbin section")


def entries(data: bytes | bytearray, offset: int, size: int) -> list[tuple[int, int, int, int]]:
    """(kind, sm arch, payload offset, payload size) of every entry of every fatbin in the section."""
    found = []
    pos, end = offset, offset + size
    while pos + 16 <= end:
        magic, _version, header, body = struct.unpack_from("<IHHQ", data, pos)
        if magic != FATBIN_MAGIC:
            pos += 8  # fatbins are 8-byte aligned inside the section
            continue
        e, stop = pos + header, pos + header + body
        while e < stop:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, e)
            arch = struct.unpack_from("<I", data, e + 28)[0]
            found.append((kind, arch, e + entry_header, payload))
            e += entry_header + payload
        pos = stop
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib", type=Path)
    ap.add_argument("--list", action="store_true", help="print MB of GPU code per (kind, arch) and stop")
    ap.add_argument("--keep", type=int, default=90, help="SASS architecture to keep (90 = sm_90)")
    ap.add_argument("-o", "--out", type=Path)
    args = ap.parse_args(argv)
    data = bytearray(args.lib.read_bytes())
    found = entries(data, *fatbin_section(args.lib))
    per_arch: collections.Counter[tuple[int, int]] = collections.Counter()
    for kind, arch, _, size in found:
        per_arch[(kind, arch)] += size
    for (kind, arch), size in sorted(per_arch.items()):
        print(f"{'SASS' if kind == KIND_ELF else 'PTX '} sm_{arch}: {size / 1e6:6.1f} MB")
    if args.list:
        return 0
    if not any(kind == KIND_ELF and arch == args.keep for kind, arch, _, _ in found):
        raise SystemExit(f"no sm_{args.keep} SASS in {args.lib}: nothing would run")
    zeroed = 0
    for kind, arch, start, size in found:
        if not (kind == KIND_ELF and arch == args.keep):
            data[start:start + size] = bytes(size)
            zeroed += size
    out = args.out or args.lib.with_name(args.lib.name + f".sm{args.keep}")
    out.write_bytes(data)
    print(f"zeroed {zeroed / 1e6:.1f} MB of {len(found)} entries; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
