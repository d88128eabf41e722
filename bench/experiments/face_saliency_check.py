"""How much the "Where the model looked" maps say, per zoo model, on real PublicTest faces.

    python -m bench.experiments.face_saliency_check [--faces 300] [--json PATH]

For Grad-CAM at two places of the last convolution block (the block's output, and the input of its
last convolution: what core.face.saliency uses), it prints the share of all-zero maps and a deletion
check: the mean drop of the predicted class's probability when the hottest 20% of the face's pixels
are set to the face's mean grey, with the face's own map, with another face's map (same shapes of
heat, wrong place), and with a centred disc (where faces are). A map that points at what the model
uses drops more with its own face than with another's. Faces: PublicTest rows 1000 onwards.
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import FER_FILE, Report, add_report_option, fer_faces
from core.face import saliency
from core.runner import ModelRunner
from core.variants.zoo import ZOO, model_path

NAME = "experiments.face_saliency_check"
HOTTEST = 0.2  # share of the 48x48 pixels greyed out


def drop(runner, x: np.ndarray, classes: np.ndarray, maps: np.ndarray, rng) -> float:
    """Mean fall of each face's class probability when its `maps`' hottest pixels are greyed out
    (ties, as in an all-zero map, broken at random)."""
    before = runner(x)[np.arange(len(x)), classes]
    greyed = x.copy()
    k = int(HOTTEST * x.shape[1] * x.shape[2])
    for i in range(len(x)):
        order = np.argsort(-(maps[i].ravel() + rng.random(maps[i].size) * 1e-6))[:k]
        face = greyed[i, :, :, 0].ravel()
        face[order] = x[i].mean()
        greyed[i, :, :, 0] = face.reshape(x.shape[1:3])
    return float(np.mean(before - runner(greyed)[np.arange(len(x)), classes]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=300)
    add_report_option(parser, NAME)
    args = parser.parse_args()
    if not FER_FILE.exists():
        raise SystemExit(f"no {FER_FILE}: this check needs real faces")
    with Report(NAME, args.json) as report:
        report.figures["rows"] = measure(args.faces)


def measure(count: int) -> list[dict]:
    x = fer_faces(count, start=1000)[..., None].astype(np.float32)
    yy, xx = np.mgrid[:48, :48]
    disc = np.broadcast_to(-((yy - 23.5) ** 2 + (xx - 23.5) ** 2), (len(x), 48, 48)).astype(np.float32)
    print(f"{len(x)} PublicTest faces; drop of the predicted class's probability with the hottest "
          f"{HOTTEST:.0%} of pixels greyed out")
    print("| model | Grad-CAM at | all-zero maps | drop, own map | drop, another face's map | drop, centred disc |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = []
    for name in ZOO["face"]:
        runner = ModelRunner.load(model_path("face", name))
        classes = runner(x).argmax(axis=1)
        centre = drop(runner, x, classes, disc, np.random.default_rng(0))
        last_block = [layer.name for layer in runner.model.layers if layer.name.startswith("block4_relu")][-1]
        for layer in (last_block, None):
            cam = saliency.GradCam(runner.model, layer)
            maps = cam(x, classes)
            empty = np.mean(maps.reshape(len(x), -1).max(axis=1) == 0)
            own = drop(runner, x, classes, maps, np.random.default_rng(0))
            other = drop(runner, x, classes, np.roll(maps, 1, axis=0), np.random.default_rng(0))
            rows.append({"model": name, "layer": cam.layer_name, "used": layer is None, "all_zero_share": empty,
                         "drop_own_map": own, "drop_other_map": other, "drop_centred_disc": centre})
            print(f"| {name} | {cam.layer_name}{' (used)' if layer is None else ''} | {empty:.1%} | {own:.3f} | "
                  f"{other:.3f} | {centre:.3f} |", flush=True)
    return rows


if __name__ == "__main__":
    main()
