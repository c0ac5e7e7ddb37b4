"""Which TensorFlow build the venv holds, and whether it sees a GPU (run by `make setup`).

tensorflow-cpu and tensorflow are two distributions of one `tensorflow` module: with both
installed, whichever was unpacked last wins file by file, so exactly one must be there.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import metadata

BUILDS = ("tensorflow", "tensorflow-cpu")


def installed_builds(versions: Mapping[str, str]) -> dict[str, str]:
    """The TensorFlow distributions among ``{name: version}`` of installed packages."""
    return {name: v for name, v in versions.items() if name.lower().replace("_", "-") in BUILDS}


def problem(builds: Mapping[str, str]) -> str:
    """One line saying what is wrong with these builds and how to fix it, or ''."""
    if not builds:
        return "no TensorFlow installed; run `make setup` (CPU) or `make setup GPU=1` (CUDA)"
    if len(builds) > 1:
        return (f"both {' and '.join(f'{n}=={v}' for n, v in sorted(builds.items()))} are installed; "
                "run `make setup GPU=1` (keeps tensorflow) or `make setup GPU=0` (keeps tensorflow-cpu)")
    return ""


def main() -> int:
    builds = installed_builds({d.metadata["Name"]: d.version for d in metadata.distributions()})
    if text := problem(builds):
        print(f"tf_build: {text}", file=sys.stderr)
        return 1
    import tensorflow as tf

    (name, version), = builds.items()
    gpus = tf.config.list_physical_devices("GPU")
    print(f"tf_build: {name}=={version}, {len(gpus)} GPU(s) visible"
          + ("; a CUDA build without a GPU: check `nvidia-smi` and CUDA_VISIBLE_DEVICES"
             if name == "tensorflow" and not gpus else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
