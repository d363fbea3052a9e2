"""Local training of a MONAI UNet for binary lesion segmentation (Dice loss, Dice metric).

Images are scaled per image to [0, 1] by MONAI's ``ScaleIntensity`` and batched by MONAI's
``DataLoader``; the network is ``monai.networks.nets.UNet`` with instance normalisation. The
optimisation is the shared loop of :mod:`consortium.learning.loop` (FedProx as its proximal term).
:func:`personalised_dice` scores the personalisation baseline (:mod:`consortium.learning.personalisation`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from consortium.learning.loop import TrainConfig, TrainResult, seeded, train_with_sgd
from consortium.learning.personalisation import fine_tuned


def build_unet(dims: int = 2, channels: tuple[int, ...] = (8, 16, 32, 64), num_res_units: int = 0,
               init_seed: int | None = 0) -> nn.Module:
    """A MONAI UNet, 1 input channel, 1 output logit channel; (8, 16, 32, 64) 2D: 40.7k parameters."""
    from monai.networks.nets import UNet

    with seeded(init_seed):
        return UNet(spatial_dims=dims, in_channels=1, out_channels=1, channels=tuple(channels),
                    strides=(2,) * (len(channels) - 1), num_res_units=num_res_units)


class SegmentationUNet(nn.Module):
    """``build_unet`` as a class FLARE's persistor can instantiate from a job config."""

    def __init__(self, dims: int = 2, channels: tuple[int, ...] = (8, 16, 32, 64), num_res_units: int = 0,
                 init_seed: int | None = 0) -> None:
        super().__init__()
        self.net = build_unet(dims, tuple(channels), num_res_units, init_seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _loader(images: np.ndarray, masks: np.ndarray, batch_size: int, shuffle: bool, seed: int):
    from monai.data import ArrayDataset, DataLoader
    from monai.transforms import ScaleIntensity

    ds = ArrayDataset(images.astype(np.float32), ScaleIntensity(), masks.astype(np.float32), None)
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=0)


def training_loader(images: np.ndarray, masks: np.ndarray, batch_size: int, seed: int):
    """Shuffled training batches (MONAI ``DataLoader``, a torch one, so Opacus can resample it)."""
    return _loader(images, masks, batch_size, True, seed)


def dice_loss() -> nn.Module:
    """MONAI's Dice loss on sigmoid outputs, per image then averaged over the batch."""
    from monai.losses import DiceLoss

    return DiceLoss(sigmoid=True)


def train_segmentation(model: nn.Module, images: np.ndarray, masks: np.ndarray, config: TrainConfig, seed: int,
                       fedprox_mu: float | None = None) -> TrainResult:
    """SGD on MONAI's Dice loss (sigmoid outputs) for ``config.epochs`` epochs, with FedProx's
    term when ``fedprox_mu`` is set; in place."""
    if len(images) == 0:
        raise ValueError("train_segmentation got no training images")
    with seeded(seed):
        return train_with_sgd(model, lambda epoch: _loader(images, masks, config.batch_size, True, seed + epoch),
                              dice_loss(), config, fedprox_mu)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Binary masks (uint8) predicted for ``images``."""
    model.eval()
    out = []
    for x, _ in _loader(images, np.zeros_like(images), batch_size, False, 0):
        out.append((torch.sigmoid(model(x)) > 0.5).to(torch.uint8).numpy())
    return np.concatenate(out)


def dice_scores(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-image Dice of binary masks with MONAI's DiceMetric (empty vs empty counts as 1)."""
    from monai.metrics import DiceMetric

    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    return metric(torch.as_tensor(pred, dtype=torch.float32), torch.as_tensor(truth, dtype=torch.float32)).numpy().reshape(-1)


def personalised_dice(model: nn.Module, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                      config: TrainConfig, seed: int) -> np.ndarray:
    """Per-image Dice on the site's own ``test`` (images, masks) of a copy of ``model`` fine-tuned
    for ``config.epochs`` epochs on the site's ``train`` (images, masks); ``model`` is unchanged."""
    tuned = fine_tuned(model, lambda m: train_segmentation(m, *train, config, seed=seed))
    return dice_scores(predict(tuned, test[0]), test[1])
