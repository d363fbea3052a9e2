"""Pictures for the imaging report: per site, one test image, its true mask and the final global
model's prediction.

This runs where the site's data lives (in POC: this machine, reading each site's own data folder);
no image ever travels through FLARE. The model comes from the downloaded job result.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from consortium.data.imaging import DEFAULT_TEST_FRACTION, load_site_data, site_split
from consortium.learning.segmentation import SegmentationUNet, dice_scores, predict

GLOBAL_MODEL = Path("app_server") / "FL_global_model.pt"


def _component_args(config_file: Path, component_id: str) -> dict:
    config = json.loads(config_file.read_text())
    for comp in config.get("components", []) + [e.get("executor", {}) for e in config.get("executors", [])]:
        if comp.get("id") == component_id:
            return comp.get("args", {})
    raise ValueError(f"{config_file}: no component with id {component_id!r}")


def load_global_model(workspace: Path) -> SegmentationUNet:
    """The final global model of a segmentation job, built with the job's own persistor arguments."""
    args = _component_args(workspace / "app_server" / "config" / "config_fed_server.json", "persistor")
    model = SegmentationUNet(**args.get("model", {}).get("args", {}))
    state = torch.load(workspace / GLOBAL_MODEL, map_location="cpu", weights_only=True)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state["model"].items()})
    return model


def _plane(batch: np.ndarray) -> np.ndarray:
    """The first image of a batch as 2D (a 3D volume's middle slice)."""
    a = np.asarray(batch)[0, 0]
    return a[a.shape[0] // 2] if a.ndim == 3 else a


def render_site_pictures(workspace: Path, site_data: dict[str, Path], out_dir: Path, job_folder: Path) -> list[Path]:
    """One PNG per site: image | true mask | predicted mask (first held-out image, split as the job's
    executor split it), Dice in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = load_global_model(workspace)
    client_config = next(job_folder.rglob("config_fed_client.json"), None)
    test_fraction = (_component_args(client_config, "executor").get("test_fraction", DEFAULT_TEST_FRACTION)
                     if client_config is not None else DEFAULT_TEST_FRACTION)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for site, folder in sorted(site_data.items()):
        _, (test_images, test_masks) = site_split(*load_site_data(folder), test_fraction)
        image, mask = test_images[:1], test_masks[:1]
        pred = predict(model, image)
        dice = float(dice_scores(pred, mask)[0])
        fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
        for ax, arr, title in zip(axes, (image, mask, pred), ("image", "true mask", "predicted mask"), strict=True):
            ax.imshow(_plane(arr), cmap="gray")
            ax.set_title(title)
            ax.axis("off")
        fig.suptitle(f"{site}: Dice {dice:.3f} (final global model)")
        fig.tight_layout(rect=(0, 0, 1, 0.9))
        path = out_dir / f"site_{site}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
