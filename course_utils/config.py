"""Run profiles, seeding and device detection shared by every notebook.

One notebook parameter, ``PROFILE``, scales every experiment:

* ``smoke``: seconds, used by the tests to check that everything runs;
* ``cpu``: minutes on a 2-core laptop, the default book build;
* ``gpu``: bigger images, more data and epochs (about ten minutes a chapter on
  a Colab T4).

Notebooks leave ``PROFILE = None`` in their parameters cell; :func:`resolve_profile`
then picks ``gpu`` when TensorFlow sees a GPU and ``cpu`` otherwise. Papermill
injects an explicit profile in the tests and the book build.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np

PROFILES = ("smoke", "cpu", "gpu")


def gpu_available() -> bool:
    """True when TensorFlow can see at least one GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def resolve_profile(profile: str | None = None) -> str:
    """Return a valid profile name; ``None`` means "gpu if a GPU is visible, else cpu"."""
    if profile is None:
        return "gpu" if gpu_available() else "cpu"
    if profile not in PROFILES:
        raise ValueError(f"Unknown PROFILE {profile!r}: choose one of {', '.join(PROFILES)}.")
    return profile


@dataclass(frozen=True)
class Profile:
    """The resolved run profile; ``pick`` chooses a setting by profile name."""

    name: str

    def pick(self, *, smoke, cpu, gpu):
        """Return the value given for this profile, e.g. ``epochs = p.pick(smoke=1, cpu=20, gpu=40)``."""
        return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[self.name]

    def __str__(self) -> str:
        return self.name


def setup(profile: str | None = None, seed: int = 42) -> Profile:
    """Resolve the profile, seed every random generator and quieten TensorFlow's logs.

    Call once at the top of a notebook, after the parameters cell.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    name = resolve_profile(profile)
    seed_everything(seed)
    return Profile(name)


def seed_everything(seed: int = 42) -> None:
    """Seed Python, NumPy and TensorFlow/Keras so that printed results are reproducible.

    On a CPU it also asks TensorFlow for deterministic kernels, so that a training
    run repeats exactly (the tests compare outputs). Not on a GPU: there some
    operations have no deterministic kernel and would raise instead of running.
    """
    import keras
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if not gpu_available():
        tf.config.experimental.enable_op_determinism()


def describe_device() -> str:
    """One line naming the profile-relevant hardware, for the top of each chapter."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return f"GPU: {', '.join(g.name for g in gpus)}"
    return f"CPU only ({os.cpu_count()} cores)"
