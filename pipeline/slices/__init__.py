"""Slice transforms: intensity to uint8, upright slicing, square resize, the mask codec."""
