"""Segmentation metrics on label maps and scoring a model on a split."""
