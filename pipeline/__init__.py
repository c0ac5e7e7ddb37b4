"""Library: readers of the raw sources, slicing, intensity, resize, split, augment and writers.

Knows nothing of DVC or params.yaml; stages/ wires it to both.
"""
