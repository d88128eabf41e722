"""FER2013 for a GPU machine lent by the device tool: the working tree that travels there is at
most 64 MiB, and fer2013.npz is 70 MB. `pack` writes its pixels as WebP-lossless mosaics (1,024
faces of 48x48 each, about 0.70 of the raw bytes) with the labels and split into .gpu/fer_pack.npz
(ignored by git, never committed: research use only), checking every mosaic decodes to the same
bytes; `unpack` rebuilds fer2013.npz there and refuses it unless its content fingerprint
(core.face.data.FerData.fingerprint) is the original's.

    python -m bench.face_gpu_pack pack ../shared/data/fer2013/fer2013.npz .gpu/fer_pack.npz
    python -m bench.face_gpu_pack unpack .gpu/fer_pack.npz ../shared/data/fer2013/fer2013.npz
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from core.face.data import FerData, load_fer

SIDE = 32  # faces per mosaic row and column


def pack(source: Path, out: Path) -> float:
    import cv2

    data = load_fer(source)
    n, per = len(data.pixels), SIDE * SIDE
    tiles = []
    for start in range(0, n, per):
        faces = data.pixels[start:start + per]
        faces = np.concatenate([faces, np.zeros((per - len(faces), 48, 48), np.uint8)])
        mosaic = faces.reshape(SIDE, SIDE, 48, 48).transpose(0, 2, 1, 3).reshape(SIDE * 48, SIDE * 48)
        ok, encoded = cv2.imencode(".webp", mosaic, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101: lossless
        if not ok or not np.array_equal(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), mosaic):
            raise ValueError(f"the mosaic of faces {start}.. does not survive WebP-lossless")
        tiles.append(encoded.ravel())
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, tiles=np.concatenate(tiles), lengths=np.array([len(t) for t in tiles]), n=np.array(n),
             label=data.label, usage=data.usage, fingerprint=np.array(data.fingerprint()))
    unpacked = _unpacked(out)
    if unpacked.fingerprint() != data.fingerprint():
        raise ValueError("the pack does not give back the same data")
    return out.stat().st_size / data.pixels.nbytes


def _unpacked(pack_path: Path) -> FerData:
    import cv2

    with np.load(pack_path) as npz:
        tiles, lengths, n = npz["tiles"], npz["lengths"], int(npz["n"])
        label, usage = npz["label"], npz["usage"]
    faces, start = [], 0
    for length in lengths:
        mosaic = cv2.imdecode(tiles[start:start + length], cv2.IMREAD_GRAYSCALE)
        faces.append(mosaic.reshape(SIDE, 48, SIDE, 48).transpose(0, 2, 1, 3).reshape(-1, 48, 48))
        start += length
    return FerData(np.concatenate(faces)[:n], label, usage)


def unpack(pack_path: Path, out: Path) -> str:
    data = _unpacked(pack_path)
    with np.load(pack_path) as npz:
        expected = str(npz["fingerprint"])
    if data.fingerprint() != expected:
        raise ValueError(f"unpacked FER2013 has fingerprint {data.fingerprint()}, not {expected}")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, pixels=data.pixels, label=data.label, usage=data.usage)
    return expected


if __name__ == "__main__":
    action, source, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    print(pack(source, target) if action == "pack" else unpack(source, target))
