"""The prepared set: subject to PNG pairs, the split, integrity report, offline augmentation."""
