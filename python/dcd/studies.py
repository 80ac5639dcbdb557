"""Small measurements behind choices the paper leaves open (docs/ASSUMPTIONS.md)."""
import numpy as np

from dcd import reference as ref


def smooth_features(rng, channels, size, blur=2.0):
    """Random features with spatial correlation, like low-level conv maps."""
    from scipy.ndimage import gaussian_filter
    f = rng.standard_normal((1, channels, size, size))
    return gaussian_filter(f, sigma=(0, 0, blur, blur))


def temperature_sweep(temperatures, shift=(0.4, -1.3), channels=64, size=40,
                      max_displacement=3, noise=0.1, blur=2.0, trials=3, seed=0):
    """End-point error (pixels, interior mean) of SOFT displacement per
    temperature, and of WTA, for a known sub-pixel translation."""
    rng = np.random.default_rng(seed)
    d = max_displacement
    errors = {t: [] for t in temperatures}
    errors["WTA"] = []
    margin = d + 3
    inner = (slice(None), slice(margin, size - margin), slice(margin, size - margin))
    for _ in range(trials):
        fa = smooth_features(rng, channels, size, blur)
        # The next frame's content moved by `shift`: fb(p) = fa(p - shift).
        motion = np.empty((1, 2, size, size))
        motion[:, 0], motion[:, 1] = shift
        fb = ref.bilinear_warp(fa, motion, scale=-1.0)
        fb = fb + noise * fa.std() * rng.standard_normal(fb.shape)
        cost = ref.cost_volume(fa, fb, d, d)
        for key in errors:
            method = "WTA" if key == "WTA" else "SOFT"
            tau = 1.0 if key == "WTA" else key
            v = ref.soft_displacement(cost, d, d, 1, tau, method)
            err = np.hypot(v[:, 0] - shift[0], v[:, 1] - shift[1])[inner[0], inner[1], inner[2]]
            errors[key].append(err.mean())
    return {k: float(np.mean(v)) for k, v in errors.items()}
