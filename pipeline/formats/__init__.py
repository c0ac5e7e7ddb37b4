"""File formats, read once: NIfTI, DICOM series, zip members, 2D images, LabelMe; know no source."""
