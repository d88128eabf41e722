"""Where a face CNN looked: Grad-CAM on its last convolution block (Selvaraju et al., ICCV 2017).

For a face and a class, feature maps of the last convolution block are weighted by the mean gradient
of the class's score (its logit, before the softmax) over each map, summed, passed through a ReLU,
scaled up to the face's 48x48 and divided by their maximum: a heat map in [0, 1], 1 where the
features that raise the class's score are strongest. A map is computed only when asked for.

Which feature maps: those entering the block's last convolution (in the zoo, block4_relu1: 6x6x256),
not the block's output. Behind the block's output come a 2x2 pooling and a Flatten + Dense head, so
its gradient is zero on three cells of four and the channel means cancel: on 300 PublicTest faces,
28-60% of the maps of four of the five zoo models were all zero at the block's output (3% for
dropout_0.5), none at the last convolution's input (docs/face_model.md,
bench/face_saliency_check.py).
"""

from __future__ import annotations

import threading
import weakref

import cv2
import numpy as np

from core.face.data import EXPRESSIONS
from core.face.detect import FACE_SIZE_PX, Face, crop_faces

OVERLAY_SIZE_PX = 192  # the face and its heat map are shown at 4x


def last_conv_input(model):
    """(the feature maps entering the model's last Conv2D: a 4-D KerasTensor, a name for them)."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise ValueError(f"model {model.name!r} has no Conv2D layer")
    return convs[-1].input, f"{convs[-1].name} input"


class GradCam:
    """Grad-CAM of one model, traced once: (n, 48, 48, 1) float32 faces 0..255 and (n,) class indices
    -> (n, 48, 48) float32 heat maps in [0, 1]."""

    def __init__(self, model, layer_name: str | None = None):
        """layer_name: the layer whose output is explained (default: the input of the last Conv2D)."""
        import keras
        import tensorflow as tf

        if layer_name:
            features_tensor, self.layer_name = model.get_layer(layer_name).output, layer_name
        else:
            features_tensor, self.layer_name = last_conv_input(model)
        head = model.layers[-1]
        # The class score is the logit: the softmax's own gradient vanishes for a confident face.
        logits_of = None
        if isinstance(head, keras.layers.Dense) and head.get_config().get("activation") == "softmax":
            kernel, bias = head.kernel, head.bias
            logits_of = lambda h: tf.matmul(h, tf.cast(kernel, h.dtype)) + tf.cast(bias, h.dtype)  # noqa: E731
            probe = keras.Model(model.inputs, [features_tensor, head.input])
        else:
            probe = keras.Model(model.inputs, [features_tensor, model.outputs[0]])

        def cams(x, class_index):
            with tf.GradientTape() as tape:
                features, last = probe(x, training=False)
                tape.watch(features)
                scores = logits_of(last) if logits_of else last
                score = tf.gather(scores, class_index, axis=1, batch_dims=1)
            grads = tape.gradient(score, features)
            weights = tf.reduce_mean(grads, axis=(1, 2))                      # (n, channels)
            return tf.nn.relu(tf.einsum("nhwc,nc->nhw", features, weights))  # (n, h, w)

        shape = (None, *model.inputs[0].shape[1:])
        self._cams = tf.function(cams, autograph=False, input_signature=[
            tf.TensorSpec(shape, tf.float32), tf.TensorSpec((None,), tf.int32)])

    def raw(self, x: np.ndarray, class_index) -> np.ndarray:
        """The un-normalised maps at the block's own resolution -> (n, h, w) float32, >= 0."""
        x = np.asarray(x, dtype=np.float32)
        class_index = np.broadcast_to(np.asarray(class_index, dtype=np.int32), (len(x),))
        return self._cams(x, np.ascontiguousarray(class_index)).numpy()

    def __call__(self, x: np.ndarray, class_index) -> np.ndarray:
        return normalised(upsampled(self.raw(x, class_index)))


def upsampled(maps: np.ndarray, size_px: int = FACE_SIZE_PX) -> np.ndarray:
    """(n, h, w) maps -> (n, size_px, size_px), bilinear."""
    return np.stack([cv2.resize(m.astype(np.float32), (size_px, size_px), interpolation=cv2.INTER_LINEAR)
                     for m in maps]) if len(maps) else np.zeros((0, size_px, size_px), np.float32)


def normalised(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum (a map with no positive value stays 0) -> values in [0, 1]."""
    maps = np.maximum(np.asarray(maps, dtype=np.float32), 0)
    peak = maps.reshape(len(maps), -1).max(axis=1, initial=0)[:, None, None]
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


_grad_cams: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_grad_cams_lock = threading.Lock()


def grad_cam_of(runner) -> GradCam:
    """The runner's GradCam, made on its first use and kept while the runner lives."""
    with _grad_cams_lock:
        if runner not in _grad_cams:
            _grad_cams[runner] = GradCam(runner.model)
        return _grad_cams[runner]


def prepare(scorer) -> None:
    """Make and trace the Grad-CAM of the scorer (each member of an ensemble) now, so that the first
    map asked for takes as long as the next ones (tracing takes about a second per model)."""
    face = np.zeros((1, FACE_SIZE_PX, FACE_SIZE_PX, 1), np.float32)
    for runner in getattr(scorer, "members", {"": scorer}).values():
        grad_cam_of(runner).raw(face, [0])


def face_heat_maps(scorer, crops: np.ndarray, class_index) -> np.ndarray:
    """Where `scorer` looked on each face for the class it is shown with: (n, 48, 48, 1) crops and
    (n,) class indices -> (n, 48, 48) in [0, 1].

    scorer: a `core.runner.ModelRunner` (Grad-CAM of its model), or a
    `core.face.ensemble.FaceEnsemble`: the mean of its members' maps, each also computed on the
    mirrored face and mirrored back when the ensemble mirrors, so the map explains what it averages.
    """
    members = getattr(scorer, "members", None)
    if members is None:
        return grad_cam_of(scorer)(crops, class_index)
    crops = np.asarray(crops, dtype=np.float32)
    maps = []
    for runner in members.values():
        cam = grad_cam_of(runner)
        maps.append(upsampled(cam.raw(crops, class_index)))
        if scorer.mirror:
            maps.append(upsampled(cam.raw(crops[:, :, ::-1, :], class_index))[:, :, ::-1])
    # Each member's map is brought to [0, 1] first, so that no member outweighs the others by scale.
    return normalised(np.mean([normalised(m) for m in maps], axis=0))


def overlay(face: np.ndarray, heat: np.ndarray, size_px: int = OVERLAY_SIZE_PX, alpha: float = 0.7) -> np.ndarray:
    """A grey face (48, 48[, 1]) 0..255 with its heat map (48, 48) in [0, 1] laid over it in the
    'jet' colours (blue cool, red hot), more opaque where hotter (at most `alpha`) ->
    (size_px, size_px, 3) uint8 RGB."""
    grey = np.clip(np.asarray(face, dtype=np.float32).reshape(FACE_SIZE_PX, FACE_SIZE_PX), 0, 255).astype(np.uint8)
    grey = cv2.resize(grey, (size_px, size_px), interpolation=cv2.INTER_CUBIC)
    hot = cv2.resize(np.clip(heat, 0, 1).astype(np.float32), (size_px, size_px), interpolation=cv2.INTER_LINEAR)
    colours = cv2.cvtColor(cv2.applyColorMap((hot * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    picture = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    # The colour's weight grows with the heat, so the face stays plain where the model did not look.
    weight = (alpha * hot)[..., None]
    return (weight * colours + (1 - weight) * picture).round().astype(np.uint8)


def face_overlay(scorer, crop: np.ndarray, label: str) -> np.ndarray:
    """Where `scorer` looked on one (48, 48, 1) crop for `label` (one of core.face.data.EXPRESSIONS),
    laid over the crop -> (OVERLAY_SIZE_PX, OVERLAY_SIZE_PX, 3) uint8 RGB."""
    heat = face_heat_maps(scorer, np.asarray(crop, np.float32)[None], [EXPRESSIONS.index(label)])[0]
    return overlay(crop, heat)


def picture_face_overlay(scorer, image: np.ndarray, box, label: str) -> np.ndarray:
    """`face_overlay` of the face at `box` (x, y, w, h) of a decoded picture, cropped as it was scored."""
    return face_overlay(scorer, crop_faces(image, [Face(tuple(box))])[0], label)
