"""Deterministic synthetic lesion images with a per-site "scanner" shift, made at the site.

Each site draws 2D (or 3D) images of bright round lesions on a dark background with MONAI's
``create_test_image_2d/3d`` (binary mask: lesion vs background), then passes them through its
scanner profile: gamma, a smooth multiplicative bias field, Gaussian blur, Gaussian noise and,
for one site, inverted contrast. InstanceNorm cancels linear contrast changes, so the profiles
are non-linear. The same profile and seed always give the same images.

Data never leaves the site: ``write_site_data`` runs when the POC is prepared (or at the hospital)
and the executor reads the folder with ``load_site_data``, which names the path on any problem.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

DATA_FILE = "images.npz"
DEFAULT_TEST_FRACTION = 0.25
TEST_SPLIT_SEED = 20  # the held-out split is fixed per site: evaluation and pictures use the same images
PROFILE_FILE = "profile.json"


@dataclass(frozen=True)
class ScannerProfile:
    """How one site's scanner distorts intensities, and how much data the site has."""

    n_images: int = 64
    size: int = 96
    dims: int = 2  # 2 or 3 (size^3 volumes)
    gamma: float = 1.0
    bias_field: float = 0.0  # amplitude of a smooth multiplicative field, exp(amplitude * polynomial)
    blur_sigma: float = 0.0  # pixels
    noise_std: float = 0.0
    contrast: float = 1.0  # multiplicative after gamma (<1: low contrast)
    invert: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "n_images": isinstance(self.n_images, int) and self.n_images >= 4,
            "size": isinstance(self.size, int) and self.size >= 16 and self.size % 16 == 0,
            "dims": self.dims in (2, 3),
            "gamma": self.gamma > 0,
            "bias_field": 0 <= self.bias_field <= 2,
            "blur_sigma": self.blur_sigma >= 0,
            "noise_std": self.noise_std >= 0,
            "contrast": self.contrast > 0,
            "invert": isinstance(self.invert, bool),
            "seed": isinstance(self.seed, int),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(", ".join(f"{k} = {getattr(self, k)!r} is out of range" for k in bad))

    @classmethod
    def from_dict(cls, d: dict, source: str = "profile") -> ScannerProfile:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: {e}") from e


def load_profiles(path: Path | str) -> dict[str, ScannerProfile]:
    """``{site: ScannerProfile}`` from a JSON file ``{"sites": {name: {...}}}``."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"scanner profiles file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    sites = raw.get("sites") if isinstance(raw, dict) else None
    if not isinstance(sites, dict) or not sites:
        raise ValueError(f"{path}: field 'sites' must map site names to profiles")
    return {name: ScannerProfile.from_dict(p, f"{path}: sites.{name}") for name, p in sites.items()}


def _bias(shape: tuple[int, ...], amplitude: float, rng: np.random.RandomState) -> np.ndarray:
    """exp(amplitude * smooth field): a random quadratic polynomial over [-1, 1]^d."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    field = sum(rng.uniform(-1, 1) * g + rng.uniform(-1, 1) * g**2 for g in grids) / len(shape)
    return np.exp(amplitude * field)


def apply_scanner(image: np.ndarray, profile: ScannerProfile, rng: np.random.RandomState) -> np.ndarray:
    """Non-linear intensity changes of one scanner applied to an image in [0, 1]."""
    from scipy.ndimage import gaussian_filter

    x = np.clip(image, 0.0, 1.0) ** profile.gamma
    if profile.bias_field:
        x = x * _bias(x.shape, profile.bias_field, rng)
    if profile.blur_sigma:
        x = gaussian_filter(x, profile.blur_sigma)
    x = x * profile.contrast
    if profile.noise_std:
        x = x + rng.normal(0.0, profile.noise_std, size=x.shape)
    if profile.invert:
        x = x.max() - x
    return x.astype(np.float32)


def generate_site(profile: ScannerProfile) -> tuple[np.ndarray, np.ndarray]:
    """``images`` float32 (n, 1, *spatial) and binary ``masks`` uint8 of the same shape."""
    from monai.data.synthetic import create_test_image_2d, create_test_image_3d

    rng = np.random.RandomState(profile.seed)
    spatial = (profile.size,) * profile.dims
    images, masks = [], []
    for _ in range(profile.n_images):
        kwargs = dict(num_objs=int(rng.randint(2, 6)), rad_max=max(2, profile.size // 6), rad_min=max(1, profile.size // 24),
                      noise_max=0.0, num_seg_classes=1, random_state=rng)
        img, seg = (create_test_image_2d(*spatial, **kwargs) if profile.dims == 2
                    else create_test_image_3d(*spatial, **kwargs))
        images.append(apply_scanner(img, profile, rng)[None])
        masks.append((seg > 0).astype(np.uint8)[None])
    return np.stack(images), np.stack(masks)


def _digest(images: np.ndarray, masks: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(masks).tobytes())
    return h.hexdigest()


def write_site_data(folder: Path | str, profile: ScannerProfile) -> Path:
    """Generate the site's data into ``folder`` (images.npz + profile.json with a checksum)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, masks = generate_site(profile)
    np.savez_compressed(folder / DATA_FILE, images=images, masks=masks)
    meta = {"profile": asdict(profile), "sha256": _digest(images, masks), "shape": list(images.shape)}
    (folder / PROFILE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_site_data(folder: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read and verify a site's data folder; errors name the path and what is wrong."""
    folder = Path(folder)
    data, meta_path = folder / DATA_FILE, folder / PROFILE_FILE
    for p in (data, meta_path):
        if not p.is_file():
            raise FileNotFoundError(f"site imaging data missing: {p} (prepare the site's data first)")
    try:
        meta = json.loads(meta_path.read_text())
        with np.load(data) as z:
            images, masks = z["images"], z["masks"]
    except Exception as e:  # zip, pickle or key errors all mean a corrupt folder
        raise ValueError(f"site imaging data unreadable in {folder}: {e}") from e
    if images.shape != masks.shape or images.ndim not in (4, 5) or images.shape[1] != 1:
        raise ValueError(f"{data}: images {images.shape} and masks {masks.shape} must match as (n, 1, *spatial)")
    if _digest(images, masks) != meta.get("sha256"):
        raise ValueError(f"{data}: checksum does not match {meta_path}; the data is corrupt or was changed")
    return images, masks


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, test) indices; at least one of each."""
    n_test = min(max(1, round(n * test_fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def site_split(images: np.ndarray, masks: np.ndarray, test_fraction: float):
    """``((train_images, train_masks), (test_images, test_masks))`` of a site, fixed split."""
    tr, te = split_indices(len(images), test_fraction, TEST_SPLIT_SEED)
    return (images[tr], masks[tr]), (images[te], masks[te])
