"""The shipped source-task weights: where the file is, how it was made, and the check that it is the shipped one.

The MobileNetV2 base pretrained on the source task (:data:`~course_utils.recognition.data.SOURCE_CLASSES`)
ships with the package in ``course_utils/weights/``; :func:`check_source_weights` refuses a missing or
different file before Keras reads it. :func:`~course_utils.recognition.transfer.pretrain_source` makes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SOURCE_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "mobilenetv2_0.35_32_source_shapes.weights.h5"
"""The MobileNetV2 base pretrained on the source task, shipped as package data (see :func:`pretrain_source`)."""

SOURCE_SHA256 = "8f59bdf866789e555828b353922e2a661077bea943f0373bbb98f56aa2831a7d"
"""SHA-256 of the shipped :data:`SOURCE_WEIGHTS` file; :func:`check_source_weights` refuses any other file."""

SOURCE_RECIPE = dict(
    alpha=0.35, input_size=32, n_train=12000, n_test=2000, epochs=10, learning_rate=4e-3, final_fraction=0.2, seed=2026
)
"""How the shipped source-task base was trained: ``python -m course_utils.recognition pretrain-source``."""

PRETRAIN_COMMAND = "python -m course_utils.recognition pretrain-source"


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_source_weights(path=None, sha256: str | None = None) -> Path:
    """Return the path of the source-task weights after checking that the file is the one that was shipped.

    ``path`` and ``sha256`` default to :data:`SOURCE_WEIGHTS` and :data:`SOURCE_SHA256`.
    A missing file raises ``FileNotFoundError``, a file with another hash
    ``ValueError``; both say how to regenerate it. (A damaged or half-written
    file would otherwise load as nonsense weights, or fail deep inside h5py.)
    """
    path = Path(SOURCE_WEIGHTS if path is None else path)
    expected = SOURCE_SHA256 if sha256 is None else sha256
    if not path.is_file():
        raise FileNotFoundError(
            f"The source-task weights {path} are missing: reinstall course_utils, or "
            f"regenerate them with `{PRETRAIN_COMMAND}` and update SOURCE_SHA256"
        )
    found = file_sha256(path)
    if found != expected:
        raise ValueError(
            f"The source-task weights {path} have SHA-256 {found}, but course_utils expects "
            f"{expected}: the file is damaged or comes from another run. Reinstall course_utils, "
            f"or regenerate it with `{PRETRAIN_COMMAND}` and update SOURCE_SHA256"
        )
    return path
