"""On-device image augmentations, vmapped per image with explicit keys (run inside the jitted step).

Public API
----------
``AugmentSpec``: the view distribution (SimSiam CIFAR recipe by default: crop scale (0.2, 1), flip 0.5, colour
jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.2, no blur).
``augment_batch(images, key, spec, mean, std) -> (B, H, W, C) float32``: one random view per image of a uint8
batch, normalised per channel; image ``i`` uses ``jax.random.split(key, B)[i]``, so a view depends only on
(key, position in the batch).
``clean_view(images, mean, std)``: PhiNet's un-augmented view x0: resized bicubically by ``clean_zoom(H)`` =
int(8 H / 7) / H and centre-cropped back to the input size (the PhiNets code's ``Resize(int(8/7 size),
BICUBIC) + CenterCrop``), normalised.
``eval_view(images, mean, std)``: the evaluation view (the image itself, normalised).
``augment_image(img, key, spec)``: one view of one float image in [0, 1] (H, W, C), before normalisation.

Ops follow torchvision's definitions (RandomResizedCrop, ColorJitter, RandomGrayscale, GaussianBlur) with two
jit-friendly simplifications, stated here so nobody is surprised: the crop box is drawn once (area fraction
and log aspect ratio uniform) and clipped to the image instead of torchvision's 10 rejection trials, and the
four jitter ops run in the fixed order brightness, contrast, saturation, hue instead of a random order. On
one-channel images saturation, hue and grayscale are the identity.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LUMA = (0.299, 0.587, 0.114)  # a tuple, not a jnp array: importing must not start the JAX backend


class AugmentSpec(NamedTuple):
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)


def random_resized_crop(img, key, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """Crop a box of area fraction U(scale), aspect exp(U(log ratio)); resize back to (H, W) bilinearly."""
    h, w = img.shape[:2]
    ka, kr, ky, kx = jax.random.split(key, 4)
    area = jax.random.uniform(ka, (), minval=scale[0], maxval=scale[1]) * h * w
    aspect = jnp.exp(jax.random.uniform(kr, (), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
    cw = jnp.clip(jnp.sqrt(area * aspect), 1.0, w)
    ch = jnp.clip(jnp.sqrt(area / aspect), 1.0, h)
    y0 = jax.random.uniform(ky, ()) * (h - ch)
    x0 = jax.random.uniform(kx, ()) * (w - cw)
    s = jnp.array([h / ch, w / cw])
    return jax.image.scale_and_translate(img, img.shape, (0, 1), s, -jnp.array([y0, x0]) * s, "linear")


def grayscale(img):
    """ITU-R 601 luma replicated over the three channels (identity for one channel)."""
    if img.shape[-1] == 1:
        return img
    return jnp.broadcast_to(img @ jnp.asarray(_LUMA, img.dtype)[:, None], img.shape)


def rgb_to_hsv(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v, mn = rgb.max(-1), rgb.min(-1)
    d = v - mn
    s = jnp.where(v > 0, d / jnp.where(v > 0, v, 1.0), 0.0)
    dd = jnp.where(d > 0, d, 1.0)
    h = jnp.where(v == r, (g - b) / dd, jnp.where(v == g, 2.0 + (b - r) / dd, 4.0 + (r - g) / dd))
    h = jnp.where(d > 0, (h / 6.0) % 1.0, 0.0)
    return jnp.stack([h, s, v], -1)


def hsv_to_rgb(hsv):
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = jnp.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.astype(jnp.int32) % 6
    pick = lambda *c: jnp.select([i == k for k in range(6)], c)
    return jnp.stack([pick(v, q, p, p, t, v), pick(t, v, v, q, p, p), pick(p, p, t, v, v, q)], -1)


def color_jitter(img, key, strength=(0.4, 0.4, 0.4, 0.1)):
    """Brightness, contrast, saturation factors U(1 -/+ s) and hue shift U(-/+ s_h), clipped to [0, 1]."""
    b, c, s, hue = strength
    kb, kc, ks, kh = jax.random.split(key, 4)
    u = lambda k, a: jax.random.uniform(k, (), minval=max(0.0, 1 - a), maxval=1 + a)
    img = jnp.clip(img * u(kb, b), 0, 1)
    fc, fs = u(kc, c), u(ks, s)
    img = jnp.clip(fc * img + (1 - fc) * grayscale(img).mean(), 0, 1)
    if img.shape[-1] == 1:
        return img
    img = jnp.clip(fs * img + (1 - fs) * grayscale(img), 0, 1)
    hsv = rgb_to_hsv(img)
    shift = jax.random.uniform(kh, (), minval=-hue, maxval=hue)
    return hsv_to_rgb(hsv.at[..., 0].set((hsv[..., 0] + shift) % 1.0))


def gaussian_blur(img, key, sigma=(0.1, 2.0)):
    """Separable Gaussian blur, sigma ~ U(sigma), kernel about 10% of the image side, reflect padding."""
    h, w = img.shape[:2]
    r = max(1, int(0.05 * min(h, w)))
    sd = jax.random.uniform(key, (), minval=sigma[0], maxval=sigma[1])
    k = jnp.exp(-0.5 * (jnp.arange(-r, r + 1) / sd) ** 2)
    k = k / k.sum()
    pad = jnp.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")
    rows = sum(k[i] * pad[i:i + h] for i in range(2 * r + 1))
    return sum(k[i] * rows[:, i:i + w] for i in range(2 * r + 1))


def augment_image(img, key, spec: AugmentSpec | None = None):
    """One random view of a float image in [0, 1] of shape (H, W, C)."""
    spec = spec or AugmentSpec()
    kc, kf, kj, kjp, kg, kb, kbp = jax.random.split(key, 7)
    img = random_resized_crop(img, kc, spec.crop_scale, spec.crop_ratio)
    img = jnp.where(jax.random.uniform(kf) < spec.flip_p, img[:, ::-1], img)
    img = jnp.where(jax.random.uniform(kjp) < spec.jitter_p, color_jitter(img, kj, spec.jitter), img)
    img = jnp.where(jax.random.uniform(kg) < spec.gray_p, grayscale(img), img)
    if spec.blur_p > 0:
        img = jnp.where(jax.random.uniform(kbp) < spec.blur_p, gaussian_blur(img, kb, spec.blur_sigma), img)
    return img


def normalize(x, mean, std):
    """(x - mean) / std per channel; ``mean``, ``std`` in [0, 1] units."""
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def augment_batch(images, key, spec: AugmentSpec, mean, std):
    """Views of a uint8 batch (B, H, W, C) -> normalised float32; image i uses split(key, B)[i]."""
    keys = jax.random.split(key, images.shape[0])
    views = jax.vmap(augment_image, in_axes=(0, 0, None))(images.astype(jnp.float32) / 255.0, keys, spec)
    return normalize(views, mean, std)


def eval_view(images, mean, std):
    """The evaluation view of a uint8 batch: the image itself, normalised (no augmentation, no resize)."""
    return normalize(images.astype(jnp.float32) / 255.0, mean, std)


def center_zoom(img, zoom: float, method: str = "cubic"):
    """Resize (H, W, C) by ``zoom`` (bicubic: Keys a = -0.5, PIL's BICUBIC) and centre-crop back to (H, W):
    PIL / torchvision ``Resize(zoom * H, BICUBIC) + CenterCrop(H)`` for square images, clipped to [0, 1]."""
    h, w = img.shape[:2]
    s = jnp.array([zoom, zoom])
    t = jnp.array([h, w]) * (1.0 - zoom) / 2.0  # keep the centre fixed
    out = jax.image.scale_and_translate(img, img.shape, (0, 1), s, t, method)
    return jnp.clip(out, 0.0, 1.0) if method == "cubic" else out


def clean_zoom(size: int) -> float:
    """The PhiNets code's zoom for a ``size`` x ``size`` image: ``Resize(int(size * 8 / 7))`` then
    ``CenterCrop(size)``, i.e. ``int(size * 8 / 7) / size`` (28 -> 32: 8/7; 32 -> 36: 9/8; 96 -> 109)."""
    return int(size * 8 / 7) / size


def clean_view(images, mean, std, zoom: float | None = None):
    """PhiNet's un-augmented view x0 of a uint8 batch: the bicubic centre zoom ``center_zoom`` by
    ``clean_zoom(H)`` (or ``zoom``), normalised."""
    x = images.astype(jnp.float32) / 255.0
    zoom = clean_zoom(images.shape[1]) if zoom is None else zoom
    if zoom != 1.0:
        x = jax.vmap(center_zoom, in_axes=(0, None))(x, zoom)
    return normalize(x, mean, std)
