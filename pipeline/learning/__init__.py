"""TensorFlow input pipelines, prediction, and predicted slices back into volumes."""
