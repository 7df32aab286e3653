"""Segmentation losses on float32 logits with an ignore index.

Every loss has the signature

    fn(labels, logits, *, ignore_index=255, class_weights=None, ...) -> scalar

with `labels: [B,H,W]` integer class ids (any int/uint dtype; `ignore_index`
marks pixels that take no part), `logits: [B,H,W,K]` (cast to float32: softmax
and losses always run in float32, whatever the compute dtype of the model) and
a float32 scalar result. Pixel losses are averaged over the valid pixels;
region losses (Jaccard, Dice, Lovasz) are computed over the valid pixels of the
whole batch and averaged over classes.

All of them work from `tf.nn.log_softmax`, so logits of +-1e4 give finite
values, and a batch where every pixel is ignored gives a loss of 0 with zero
(not NaN) gradients: every ratio uses `tf.math.divide_no_nan`, whose gradient
is zero where the denominator is zero.

`get_loss("0.5*ce+1.0*lovasz", **kwargs)` builds weighted sums.
"""
from __future__ import annotations

import inspect
import re
from typing import Callable, Sequence

import tensorflow as tf

from core.data.labels import IGNORE_INDEX

def _prepare(labels, logits, ignore_index: int):
    """Returns (ids [N] int32, valid [N] float32, log_probs [N,K] float32).

    Pixels are flattened over batch and space; ignored pixels get id 0 and
    valid 0, so they can be masked by multiplication.
    """
    logits = tf.cast(logits, tf.float32)
    num_classes = tf.shape(logits)[-1]
    logits = tf.reshape(logits, [-1, num_classes])
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    is_valid = tf.not_equal(labels, ignore_index)
    ids = tf.where(is_valid, labels, tf.zeros_like(labels))
    return ids, tf.cast(is_valid, tf.float32), tf.nn.log_softmax(logits, axis=-1)


def _class_weights(class_weights, num_classes) -> tf.Tensor | None:
    if class_weights is None:
        return None
    weights = tf.convert_to_tensor(class_weights, tf.float32)
    if weights.shape.rank != 1:
        raise ValueError(
            f"core.losses: class_weights must be a vector of K floats, got "
            f"shape {weights.shape}")
    return weights


def _pixel_mean(per_pixel, ids, valid, class_weights):
    """Mean of per_pixel [N] over valid pixels, weighted by class_weights[id].

    With class weights the mean is sum(w_y * l) / sum(w_y) (PyTorch's
    convention), so weights change the balance, not the scale, of the loss.
    """
    weights = valid
    if class_weights is not None:
        weights = weights * tf.gather(class_weights, ids)
    return tf.math.divide_no_nan(tf.reduce_sum(weights * per_pixel),
                                 tf.reduce_sum(weights))


def cross_entropy(labels, logits, *, ignore_index: int = IGNORE_INDEX,
                  class_weights=None, label_smoothing: float = 0.0) -> tf.Tensor:
    """Softmax cross-entropy averaged over valid pixels.

    Per pixel, with smoothing e and K classes:
      l = -(1 - e) log p_y - (e / K) sum_k log p_k.

    Args:
      labels: [B,H,W] integer ids, `ignore_index` for pixels to skip.
      logits: [B,H,W,K] float (computed in float32).
      class_weights: optional [K] floats; the result is
        sum(w_y l) / sum(w_y) over valid pixels.
      label_smoothing: e in [0, 1).
    Returns:
      float32 scalar.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"core.losses.cross_entropy: label_smoothing must be in "
                         f"[0, 1), got {label_smoothing}")
    ids, valid, log_probs = _prepare(labels, logits, ignore_index)
    num_classes = tf.cast(tf.shape(log_probs)[-1], tf.float32)
    per_pixel = -tf.gather(log_probs, ids, batch_dims=1)
    if label_smoothing:
        per_pixel = ((1.0 - label_smoothing) * per_pixel
                     - label_smoothing / num_classes * tf.reduce_sum(log_probs, -1))
    weights = _class_weights(class_weights, num_classes)
    return _pixel_mean(per_pixel, ids, valid, weights)


def focal_loss(labels, logits, *, ignore_index: int = IGNORE_INDEX,
               class_weights=None, gamma: float = 2.0,
               alpha: "float | Sequence[float] | None" = None) -> tf.Tensor:
    """Focal loss (Lin et al., 2017) averaged over valid pixels.

    Per pixel: l = -alpha_y (1 - p_y)^gamma log p_y with p the softmax
    probabilities: `keras.losses.CategoricalFocalCrossentropy` for one-hot
    targets, and segmentation_models_pytorch's
    `softmax_focal_loss_with_logits` when alpha is None. gamma = 0 and no
    alpha is cross-entropy.

    About alpha: RetinaNet's alpha = 0.25 (also the Keras default) belongs to
    the binary, sigmoid focal loss, where it weights the foreground by alpha
    and the background by 1 - alpha. With a softmax over K classes a scalar
    alpha has no background to balance against: it only multiplies the loss
    by alpha (0.25 would quarter a focal term and its share of "ce+focal").
    So the default here is no weighting; a per-class list is the multi-class
    counterpart of RetinaNet's balance.

    Args:
      labels: [B,H,W] integer ids. logits: [B,H,W,K] float.
      class_weights: optional [K] floats, weighted mean as in cross_entropy
        (sum(w_y l) / sum(w_y): changes the balance, not the scale).
      gamma: focusing parameter >= 0.
      alpha: None (or 1.0): no weighting; a scalar > 0 multiplies the loss;
        [K] floats weight each pixel by alpha_y (the mean stays over the
        valid pixels, so unlike class_weights the scale changes).
    Returns:
      float32 scalar.
    """
    if gamma < 0:
        raise ValueError(f"core.losses.focal_loss: gamma must be >= 0, got {gamma}")
    ids, valid, log_probs = _prepare(labels, logits, ignore_index)
    log_p = tf.gather(log_probs, ids, batch_dims=1)
    # 1 - p computed as -expm1(log p): exact where p is close to 1.
    one_minus_p = -tf.math.expm1(log_p)
    if gamma == 0:
        modulation = tf.ones_like(one_minus_p)
    else:
        # The floor keeps d/dx x**gamma finite at x = 0 when gamma < 1.
        modulation = tf.pow(tf.maximum(one_minus_p, 1e-30), gamma)
    per_pixel = -modulation * log_p
    if alpha is not None:
        per_pixel *= _focal_alpha(alpha, log_probs.shape[-1], ids)
    weights = _class_weights(class_weights, None)
    return _pixel_mean(per_pixel, ids, valid, weights)


def _focal_alpha(alpha, num_classes, ids) -> tf.Tensor:
    """alpha as a scalar or gathered per pixel; checks what can be checked
    before the graph runs (the number of classes when it is static)."""
    alpha = tf.convert_to_tensor(alpha, tf.float32)
    if alpha.shape.rank == 0:
        return alpha
    if alpha.shape.rank != 1 or (num_classes is not None
                                 and alpha.shape[0] != num_classes):
        raise ValueError(f"core.losses.focal_loss: alpha must be a scalar or one value "
                         f"per class ({num_classes}), got shape {alpha.shape}")
    return tf.gather(alpha, ids)


def _soft_counts(labels, logits, ignore_index):
    """Returns (probs [N,K], one_hot [N,K], valid [N,1]) with ignored rows zeroed."""
    ids, valid, log_probs = _prepare(labels, logits, ignore_index)
    valid = valid[:, None]
    probs = tf.exp(log_probs) * valid
    one_hot = tf.one_hot(ids, tf.shape(log_probs)[-1], dtype=tf.float32) * valid
    return probs, one_hot, valid


def _class_mean(per_class, class_weights, has_valid):
    """(Weighted) mean over classes; 0 when the batch has no valid pixel."""
    weights = _class_weights(class_weights, None)
    if weights is None:
        mean = tf.reduce_mean(per_class)
    else:
        mean = tf.math.divide_no_nan(tf.reduce_sum(weights * per_class),
                                     tf.reduce_sum(weights))
    return mean * has_valid


def jaccard_loss(labels, logits, *, ignore_index: int = IGNORE_INDEX,
                 class_weights=None, smooth: float = 1.0) -> tf.Tensor:
    """Soft Jaccard (IoU) loss, per class over the batch, averaged over classes.

    With p the softmax probabilities and y the one-hot labels of the valid
    pixels of the batch, for each class k:
      I_k = sum p_k y_k,   U_k = sum (p_k + y_k - p_k y_k),
      loss = 1 - mean_k (I_k + s) / (U_k + s).
    The smoothing s keeps a class absent from the batch (I_k = 0) from
    pinning the loss: its term tends to 1 as its probabilities go to 0.

    Args:
      labels: [B,H,W] integer ids. logits: [B,H,W,K] float.
      class_weights: optional [K] floats: weighted mean over classes.
      smooth: s >= 0.
    Returns:
      float32 scalar, 0 if no pixel is valid.
    """
    probs, one_hot, valid = _soft_counts(labels, logits, ignore_index)
    intersection = tf.reduce_sum(probs * one_hot, axis=0)
    union = tf.reduce_sum(probs + one_hot - probs * one_hot, axis=0)
    iou = tf.math.divide_no_nan(intersection + smooth, union + smooth)
    has_valid = tf.cast(tf.reduce_sum(valid) > 0, tf.float32)
    return _class_mean(1.0 - iou, class_weights, has_valid)


def dice_loss(labels, logits, *, ignore_index: int = IGNORE_INDEX,
              class_weights=None, smooth: float = 1.0) -> tf.Tensor:
    """Soft Dice loss, per class over the batch, averaged over classes.

    For each class k: D_k = (2 sum p_k y_k + s) / (sum p_k + sum y_k + s);
    loss = 1 - mean_k D_k (same notation as jaccard_loss).
    segmentation_models_pytorch's DiceLoss(smooth=s) is this with smooth 2s
    when every class is in the batch (it zeroes an absent class's term).

    Returns:
      float32 scalar, 0 if no pixel is valid.
    """
    probs, one_hot, valid = _soft_counts(labels, logits, ignore_index)
    intersection = tf.reduce_sum(probs * one_hot, axis=0)
    total = tf.reduce_sum(probs, axis=0) + tf.reduce_sum(one_hot, axis=0)
    dice = tf.math.divide_no_nan(2.0 * intersection + smooth, total + smooth)
    has_valid = tf.cast(tf.reduce_sum(valid) > 0, tf.float32)
    return _class_mean(1.0 - dice, class_weights, has_valid)


def lovasz_grad(sorted_foreground: tf.Tensor) -> tf.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss (Berman et al. 2018).

    Args:
      sorted_foreground: [..., N] float 0/1, pixels sorted by decreasing error.
    Returns:
      [..., N] float32 g with g_1 = J_1 and g_i = J_i - J_{i-1}, where
      J_i = 1 - (G - cumsum(fg)_i) / (G + cumsum(1 - fg)_i), G = sum(fg).
    """
    fg = tf.cast(sorted_foreground, tf.float32)
    total = tf.reduce_sum(fg, axis=-1, keepdims=True)
    intersection = total - tf.cumsum(fg, axis=-1)
    union = total + tf.cumsum(1.0 - fg, axis=-1)
    jaccard = 1.0 - intersection / union  # union >= 1 from the first pixel on.
    return tf.concat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], -1)


def lovasz_softmax(labels, logits, *, ignore_index: int = IGNORE_INDEX,
                   class_weights=None, classes: str = "present",
                   per_image: bool = False) -> tf.Tensor:
    """Lovasz-softmax loss (Berman, Rannen Triki, Blaschko, CVPR 2018).

    For each class c over the valid pixels of the batch: errors
    e_i = |fg_i - p_i,c|, sorted in decreasing order (permutation pi); the loss
    is the Lovasz extension  sum_i e_pi(i) g_i(fg_pi)  (see lovasz_grad),
    averaged over classes.

    With per_image=True (Berman's `per_image`) that loss is computed for
    each image of the batch on its own pixels and classes, then averaged
    over the B images. An image without a valid pixel counts as 0 in that
    mean, with zero gradient: the intent of Berman's code (its hinge loss
    returns 0 there; its softmax version returns an empty tensor). The
    per-image loss optimises the mean of the images' IoUs, the batch loss
    the IoU of the batch: per image, a class present in a few images only
    weighs as much in those images as the classes present everywhere.

    Ignored pixels get error -1 so they sort last; their terms are then
    zeroed, and since g_i only depends on the pixels before i the result is
    that of the valid pixels alone, without a dynamic-shape boolean mask.

    Args:
      labels: [B,H,W] integer ids. logits: [B,H,W,K] float.
      class_weights: optional [K] floats: weighted mean over classes.
      classes: "present" (classes with a valid pixel in the batch, or in the
        image when per_image, the paper's default) or "all".
      per_image: average over images instead of one loss over the batch.
    Returns:
      float32 scalar, 0 if no pixel is valid.
    """
    if classes not in ("present", "all"):
        raise ValueError(f"core.losses.lovasz_softmax: classes must be 'present' "
                         f"or 'all', got {classes!r}")
    probs, one_hot, valid = _soft_counts(labels, logits, ignore_index)
    # Rows: the images (per_image) or the whole batch as one row; [R,N,K].
    rows = tf.shape(labels)[0] if per_image else 1
    probs, one_hot, valid = (tf.reshape(t, [rows, -1, tf.shape(t)[-1]])
                             for t in (probs, one_hot, valid))
    errors = tf.abs(one_hot - probs)
    errors = tf.transpose(tf.where(valid > 0, errors, -1.0), [0, 2, 1])  # [R,K,N]
    order = tf.argsort(errors, axis=-1, direction="DESCENDING", stable=True)
    errors_sorted = tf.gather(errors, order, batch_dims=2)
    fg_sorted = tf.stop_gradient(
        tf.gather(tf.transpose(one_hot, [0, 2, 1]), order, batch_dims=2))
    valid_sorted = tf.gather(
        tf.transpose(tf.broadcast_to(valid, tf.shape(probs)), [0, 2, 1]), order,
        batch_dims=2)
    per_class = tf.reduce_sum(errors_sorted * valid_sorted * lovasz_grad(fg_sorted), -1)
    present = tf.cast(tf.reduce_sum(one_hot, axis=1) > 0, tf.float32)  # [R,K]
    mask = present if classes == "present" else tf.ones_like(present)
    mask *= tf.cast(tf.reduce_sum(valid, axis=[1, 2]) > 0, tf.float32)[:, None]
    weights = _class_weights(class_weights, None)
    if weights is not None:
        mask *= weights
    per_row = tf.math.divide_no_nan(tf.reduce_sum(mask * per_class, -1),
                                    tf.reduce_sum(mask, -1))
    return tf.reduce_mean(per_row)


LOSSES: dict[str, Callable[..., tf.Tensor]] = {
    "ce": cross_entropy,
    "cross_entropy": cross_entropy,
    "focal": focal_loss,
    "jaccard": jaccard_loss,
    "iou": jaccard_loss,
    "dice": dice_loss,
    "lovasz": lovasz_softmax,
}

_TERM = re.compile(r"^\s*(?:([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?([a-z_]+)\s*$")


class WeightedLoss:
    """sum_i w_i loss_i(labels, logits), built by get_loss.

    Attributes:
      terms: tuple of (weight, name, fn), fn with its keyword arguments bound.
    """

    def __init__(self, terms):
        self.terms = tuple(terms)

    def __call__(self, labels, logits) -> tf.Tensor:
        return tf.add_n([weight * fn(labels, logits) for weight, _, fn in self.terms])

    def components(self, labels, logits) -> dict[str, tf.Tensor]:
        """Unweighted value of every term, keyed by name (for summaries)."""
        return {name: fn(labels, logits) for _, name, fn in self.terms}

    def __repr__(self) -> str:
        return "WeightedLoss(" + " + ".join(f"{w:g}*{n}" for w, n, _ in self.terms) + ")"


def get_loss(spec: str, **kwargs) -> WeightedLoss:
    """Builds a loss from a spec such as "ce+jaccard" or "0.5*ce+1.0*lovasz".

    Names: ce (cross_entropy), focal, jaccard (iou), dice, lovasz. Each
    keyword argument goes to every term whose function accepts it
    (`ignore_index` and `class_weights` to all, `gamma` to focal, ...).

    Returns:
      WeightedLoss: `loss(labels, logits) -> float32 scalar`.
    Raises:
      ValueError: naming an unknown term, a malformed spec, or a keyword
        argument no term accepts.
    """
    terms, used = [], set()
    for part in spec.split("+"):
        match = _TERM.match(part.lower())
        if not match:
            raise ValueError(f"loss spec {spec!r}: cannot parse term {part!r}; "
                             f"expected NAME or WEIGHT*NAME, e.g. '0.5*ce+1.0*lovasz'")
        weight, name = float(match.group(1) or 1.0), match.group(2)
        if name not in LOSSES:
            raise ValueError(f"loss spec {spec!r}: unknown loss {name!r}; expected "
                             f"one of {sorted(LOSSES)}")
        fn = LOSSES[name]
        accepted = inspect.signature(fn).parameters
        bound = {k: v for k, v in kwargs.items() if k in accepted}
        used.update(bound)
        terms.append((weight, name, _bind(fn, bound)))
    unused = sorted(set(kwargs) - used)
    if unused:
        raise ValueError(f"loss spec {spec!r}: no term accepts argument(s) {unused}")
    return WeightedLoss(terms)


def _bind(fn, bound):
    def loss(labels, logits):
        return fn(labels, logits, **bound)
    loss.__name__ = fn.__name__
    return loss
