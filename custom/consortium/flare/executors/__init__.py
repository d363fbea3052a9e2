"""FLARE executors at a site: what every training task shares, tabular (heart disease) and MONAI segmentation."""
