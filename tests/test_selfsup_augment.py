"""On-device augmentations: exact identities, an independent colour-space reference, key determinism.

Tolerances: 1e-5 for float32 image ops on values in [0, 1] (a few roundings of O(1) numbers).
"""
import colorsys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selfsup import augment


@pytest.fixture(scope="module")
def img():
    return jax.random.uniform(jax.random.key(0), (12, 10, 3))


def test_full_area_square_crop_of_a_square_image_is_the_identity():
    sq = jax.random.uniform(jax.random.key(0), (10, 10, 3))
    np.testing.assert_allclose(augment.random_resized_crop(sq, jax.random.key(1), (1.0, 1.0), (1.0, 1.0)), sq,
                               atol=1e-5)


def test_crop_of_a_linear_ramp_is_a_linear_ramp_with_larger_slope():
    """Bilinear resampling reproduces linear functions: the crop's slope is 1 / (crop width fraction)."""
    ramp = jnp.broadcast_to(jnp.arange(32.0)[None, :, None], (32, 32, 1))
    out = np.asarray(augment.random_resized_crop(ramp, jax.random.key(3), scale=(0.25, 0.25), ratio=(1, 1)))
    slope = np.diff(out[5, 4:-4, 0])  # interior: no edge effects
    np.testing.assert_allclose(slope, 0.5, atol=1e-4)  # crop 16 px wide stretched to 32 -> slope 1/2


def test_grayscale_is_itu601_luma(img):
    g = np.asarray(augment.grayscale(img))
    want = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    for c in range(3):
        np.testing.assert_allclose(g[..., c], want, atol=1e-6)


def test_hsv_conversions_match_colorsys():
    rgb = np.array(jax.random.uniform(jax.random.key(4), (200, 3)))
    rgb[0] = [0.5, 0.5, 0.5]  # grey: hue and saturation 0
    want = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
    np.testing.assert_allclose(augment.rgb_to_hsv(jnp.asarray(rgb)), want, atol=1e-5)
    np.testing.assert_allclose(augment.hsv_to_rgb(jnp.asarray(want)), rgb, atol=1e-5)


def test_zero_strength_jitter_is_the_identity_and_hue_shift_keeps_value(img):
    np.testing.assert_allclose(augment.color_jitter(img, jax.random.key(5), (0, 0, 0, 0)), img, atol=1e-5)
    shifted = augment.color_jitter(img, jax.random.key(5), (0, 0, 0, 0.5))
    np.testing.assert_allclose(shifted.max(-1), img.max(-1), atol=1e-5)  # HSV value = max channel


def test_blur_preserves_constants_and_smooths_noise(img):
    const = jnp.full((16, 16, 3), 0.3)
    np.testing.assert_allclose(augment.gaussian_blur(const, jax.random.key(6)), const, atol=1e-6)
    noise = jax.random.uniform(jax.random.key(7), (32, 32, 1))
    assert float(augment.gaussian_blur(noise, jax.random.key(7), (1.5, 1.5)).std()) < 0.6 * float(noise.std())


def test_batch_views_are_per_image_keys_and_deterministic():
    imgs = jax.random.randint(jax.random.key(8), (4, 16, 16, 3), 0, 256).astype(jnp.uint8)
    spec = augment.AugmentSpec(blur_p=0.5)
    key = jax.random.key(9)
    a = augment.augment_batch(imgs, key, spec, (0.5,) * 3, (0.25,) * 3)
    np.testing.assert_array_equal(a, augment.augment_batch(imgs, key, spec, (0.5,) * 3, (0.25,) * 3))
    k2 = jax.random.split(key, 4)[2]
    one = (augment.augment_image(imgs[2].astype(jnp.float32) / 255, k2, spec) - 0.5) / 0.25
    np.testing.assert_allclose(a[2], one, atol=1e-5)
    assert not np.allclose(a[0], a[1])
    b = augment.augment_batch(imgs, jax.random.key(10), spec, (0.5,) * 3, (0.25,) * 3)
    assert not np.allclose(a, b)


def test_flip_probability_one_mirrors_columns():
    spec = augment.AugmentSpec(crop_scale=(1, 1), crop_ratio=(1, 1), flip_p=1.0, jitter_p=0.0, gray_p=0.0)
    im = jax.random.uniform(jax.random.key(11), (8, 8, 1))
    np.testing.assert_allclose(augment.augment_image(im, jax.random.key(12), spec), im[:, ::-1], atol=1e-5)


def test_clean_view_is_normalised_pixels():
    imgs = jnp.full((2, 4, 4, 1), 255, jnp.uint8)
    np.testing.assert_allclose(augment.clean_view(imgs, (0.5,), (0.25,)), 2.0)
