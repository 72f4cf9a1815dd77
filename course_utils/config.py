"""Run profiles, seeding and device detection shared by every notebook.

One notebook parameter, ``PROFILE``, scales every experiment:

* ``smoke``: seconds, used by the tests to check that everything runs;
* ``cpu``: minutes on a 2-core laptop, the default book build;
* ``gpu``: bigger images, more data and epochs (about ten minutes a chapter on
  a Colab T4).

Notebooks leave ``PROFILE = None`` in their parameters cell; :func:`resolve_profile`
then picks ``gpu`` when TensorFlow sees a GPU and ``cpu`` otherwise. Papermill
injects an explicit profile in the tests and the book build.

Precision and devices are decided here too, by :func:`setup`, and nowhere else.
With the ``gpu`` profile and a visible GPU, Keras' global dtype policy becomes
``mixed_float16`` (float16 computations, float32 weights; the builders keep their
output layers in float32), and with two GPUs or more a
``tf.distribute.MirroredStrategy`` over all of them becomes TensorFlow's default
strategy, so that the models a notebook builds are mirrored without any change to
its code. The training helpers (``models.fit_classifier``,
``recognition.fit_with_warmup``, ``segmentation.fit_segmenter``,
``metric_learning.fit_embedding``, ``detection.fit_detector``) take a ``strategy`` and
call :func:`distribute`: the batch size they are given is per replica. XLA is left to Keras (``jit_compile="auto"``):
on for a single GPU, off on a CPU, and off under ``tf.distribute``, where Keras
disables it (XLA and mirrored variables clash, keras-team/keras#19005). That is
why one GPU gets no MirroredStrategy: it would gain nothing and lose XLA.
Everywhere else (``smoke``, ``cpu``, or ``gpu`` without a GPU) nothing changes:
float32 and TensorFlow's default strategy.

TensorFlow and Keras are imported inside the functions that use them: the scenes and
:func:`quiet_tensorflow` import this module, and must run before (or without) TensorFlow.
"""

from __future__ import annotations

import ctypes
import os
import platform
import random
import re
import select
import sys
import threading
from dataclasses import dataclass

import numpy as np

PROFILES = ("smoke", "cpu", "gpu")

TENSORFLOW_NOISE = re.compile(
    rb"^I\d{4} [\d:.]+ +\d+ \S+:\d+\]"  # INFO lines: I<mmdd> <time> <thread> <file>:<line>] (oneDNN, CPU, ...)
    rb"|^To enable the following instructions: .* rebuild TensorFlow"  # the second line of the CPU-feature notice
    rb"|failed call to cuInit"  # a CUDA build of TensorFlow on a machine without a GPU (a Colab CPU runtime)
    rb"|mentions attribute use_unbounded_threadpool"  # tf.data graphs of newer TensorFlow Python code, harmless
    rb"|All log messages before absl::InitializeLog\(\) is called"
)
"""Lines TensorFlow's C++ side prints that are not errors, or are errors that do not matter: dropped by
:func:`quiet_tensorflow`. (TensorFlow 2.21 prints its start-up INFO lines before it reads
``TF_CPP_MIN_LOG_LEVEL``, so only filtering removes them.)"""
_stderr_filtered = False


def quiet_tensorflow(filter_stderr: bool | None = None) -> None:
    """Keep TensorFlow's start-up notices out of the cells, and keep its real errors. Call before TensorFlow loads.

    It sets ``TF_CPP_MIN_LOG_LEVEL=1`` (no INFO lines once TensorFlow's logging is up; warnings and errors stay),
    unless already set. In a Jupyter kernel (``filter_stderr`` None) it also filters the process's standard
    error, which the kernel shows in the cells, dropping the lines of :data:`TENSORFLOW_NOISE` (the oneDNN and
    CPU-feature notices among them) and passing every other line on. Every generated notebook calls it in its
    first cell; :func:`setup` calls it too, too late to silence start-up.
    """
    global _stderr_filtered

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if filter_stderr is None:
        filter_stderr = "ipykernel" in sys.modules  # a plain script keeps its standard error untouched
    if filter_stderr and not _stderr_filtered:
        _stderr_filtered = True
        _filter_fd(2, TENSORFLOW_NOISE)


def quiet_progress_bars() -> None:
    """Let ``tqdm.auto`` choose its progress bar without a warning: a widget where ipywidgets is installed (Colab),
    a text bar where it is not.

    TensorFlow Datasets (the ``"tfds:..."`` sources) and :func:`course_utils.data.load_image_folder` draw their
    progress with ``tqdm.auto``. Imported in a Jupyter kernel without ipywidgets (a local install, whose extras do
    not bring it), it warns "IProgress not found. Please update jupyter and ipywidgets." under the cell, then
    draws a text bar anyway. This imports it once with that warning silenced, so it makes the same choice quietly;
    :func:`setup` calls it.
    """
    if "tqdm.autonotebook" in sys.modules:  # already imported: it has chosen (and warned, if it did)
        return
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
        import tqdm.auto  # noqa: F401


def _filter_fd(fd: int, noise: re.Pattern) -> None:
    """Route file descriptor ``fd`` through a pipe whose reader drops the lines matching ``noise``."""
    original = os.dup(fd)
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)

    def pump():
        pending = b""
        while True:
            ready, _, _ = select.select([read_end], [], [], 0.2)
            chunk = os.read(read_end, 65536) if ready else b""
            if ready and not chunk:  # the write end closed: pass on what is left
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not noise.search(line))
            if not ready and pending:  # a partial line with nothing more coming: pass it on now
                kept, pending = kept + pending, b""
            if kept:
                os.write(original, kept)
        if pending and not noise.search(pending):
            os.write(original, pending)

    threading.Thread(target=pump, name="quiet-tensorflow", daemon=True).start()


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
    """The resolved run profile; ``pick`` chooses a setting by profile name.

    ``mixed_precision`` tells whether :func:`setup` set the ``mixed_float16``
    policy, ``replicas`` how many devices share each batch (1 unless several
    GPUs are mirrored).
    """

    name: str
    mixed_precision: bool = False
    replicas: int = 1
    run_seed: int = 0
    data_source: str = "scenes"

    def seed(self, step: int) -> int:
        """The seed of one random step of the chapter (its data, an initialisation, a training order).

        ``step`` itself for run seed 0, the book's default; another run seed
        (the ``SEED`` parameter) shifts every step's seed at once, so that the
        benchmarks can rerun a whole chapter with fresh data, weights and order.
        """
        return 1000 * self.run_seed + step

    def pick(self, *, smoke, cpu, gpu):
        """Return the value given for this profile, e.g. ``epochs = p.pick(smoke=1, cpu=20, gpu=40)``."""
        return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[self.name]

    def __str__(self) -> str:
        return self.name


FIGURE_AUDIT = "COURSE_FIGURE_AUDIT"
"""Environment variable: a file to which every figure drawn in the kernel appends its smallest text as the page
shows it (one JSON line per draw; :func:`course_utils.plots.audit_text_on_draw`), for the tests; unset for readers."""


def sharp_figures() -> bool:
    """Have a Jupyter kernel show matplotlib figures as PNGs of twice the pixels, displayed at the same size
    (IPython's "retina" format), so that they stay sharp on high-resolution screens and in the book. Returns
    whether there was a kernel to set; :func:`setup` calls it."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return False
    if get_ipython() is None:
        return False
    set_matplotlib_formats("retina")
    if os.environ.get(FIGURE_AUDIT):  # the tests measure each figure's text as the page shows it
        import matplotlib

        hook = "course_utils.plots:audit_text_on_draw"
        if hook not in matplotlib.rcParams["figure.hooks"]:
            matplotlib.rcParams["figure.hooks"] = [*matplotlib.rcParams["figure.hooks"], hook]
    return True


def setup(profile: str | None = None, seed: int = 0, data_source: str = "scenes") -> Profile:
    """Resolve the profile, seed every random generator, set precision and devices, quieten TensorFlow's logs.

    ``seed`` is the run seed (a chapter's ``SEED`` parameter): see :meth:`Profile.seed`. ``data_source`` is a
    chapter's ``DATA_SOURCE``: on anything but the synthetic ``"scenes"`` the text, which describes the scenes,
    is not checked against the outputs (:func:`course_utils.claims.expect` only records), and a note says so.

    Call once at the top of a notebook, after the parameters cell (and outside
    any ``strategy.scope()``). Profile ``gpu`` with a visible GPU sets the
    ``mixed_float16`` policy, and with two GPUs or more makes a
    ``MirroredStrategy`` over all of them the default strategy; any other
    profile, or ``gpu`` on a machine without a GPU, gets float32 and
    TensorFlow's default strategy (undoing an earlier call in the same process).
    """
    import keras
    import tensorflow as tf

    quiet_tensorflow()
    quiet_progress_bars()
    sharp_figures()
    keep_freed_memory()
    name = resolve_profile(profile)
    seed_everything(1000 * seed)
    gpus = tf.config.list_physical_devices("GPU") if name == "gpu" else []
    keras.mixed_precision.set_global_policy("mixed_float16" if gpus else "float32")
    if len(gpus) >= 2:
        tf.distribute.experimental_set_strategy(tf.distribute.MirroredStrategy())  # all visible GPUs
    elif tf.distribute.has_strategy():
        tf.distribute.experimental_set_strategy(None)
    data_source = str(data_source)
    if data_source != "scenes":
        print(
            f"DATA_SOURCE = {data_source!r}: the outputs below are your data's; the text describes the synthetic "
            "scenes, so its numbers are not yours."
        )
    return Profile(name, mixed_precision=bool(gpus), replicas=replicas(), run_seed=int(seed), data_source=data_source)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Stop glibc from giving TensorFlow's freed buffers back to the operating system at every training step.

    The first time TensorFlow runs a ``tf.data`` generator (``model.fit`` makes one of every
    ``keras.utils.PyDataset``), it calls ``mallopt(M_TRIM_THRESHOLD, 128 KiB)``. That call also freezes glibc's
    mmap threshold at 128 KiB, so from then on every larger buffer is mapped afresh and unmapped again at each
    step. On the 2-core test host that cost about 47,000 page faults and half the CPU time of each step: week 5's
    embedding trained at 0.2 s a step instead of 0.06 s. This runs such a generator once, so that TensorFlow's call
    is behind us, then raises both thresholds again (freed memory up to 256 MiB stays with the process for reuse).
    Returns False, changing nothing, where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return False
    import tensorflow as tf

    for _ in tf.data.Dataset.from_generator(lambda: iter([0]), output_signature=tf.TensorSpec((), tf.int32)):
        pass
    return bool(libc.mallopt(M_TRIM_THRESHOLD, 256 << 20) and libc.mallopt(M_MMAP_THRESHOLD, 32 << 20))


def replicas(strategy=None) -> int:
    """How many replicas share each batch under ``strategy`` (default: the current one); 1 without distribution."""
    import tensorflow as tf

    return (strategy or tf.distribute.get_strategy()).num_replicas_in_sync


def distribute(model, batch_size: int | None = None, strategy=None):
    """The strategy to train ``model`` with and the global batch size: ``(strategy, batch_size * replicas)``.

    The one place where the training helpers handle ``tf.distribute``: they
    call it, then compile under ``strategy.scope()`` and fit with the global
    batch size, so that ``batch_size`` always means images per replica.
    ``strategy=None`` means the strategy the model was built under or, for a
    model built outside any, the current one (``tf.distribute.get_strategy()``,
    which :func:`setup` may have set). Raises ``ValueError`` if the model's
    variables were not created under that strategy: Keras can only train a model
    with the strategy whose scope it was built in. ``batch_size=None`` returns
    ``None`` as the batch size (for data that is already batched).
    """
    if strategy is None:
        strategy = model.distribute_strategy
    strays = [w.path for w in model.weights if not strategy.extended.variable_created_in_scope(w.value)]
    if strays or model.distribute_strategy is not strategy:
        where = f"e.g. {strays[0]}" if strays else "its strategy differs"
        raise ValueError(
            f"Model {model.name!r} was not built under the {type(strategy).__name__} it is to be trained with "
            f"({where}). Build the model inside `with strategy.scope():` and pass the same strategy "
            "(or none, to use the model's own)."
        )
    return strategy, None if batch_size is None else int(batch_size) * strategy.num_replicas_in_sync


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


def replica_share(loss):
    """``loss`` divided by the number of replicas when computed by one replica of a ``tf.distribute`` strategy.

    Each replica computes the loss of its part of the batch and the gradients are
    summed over the replicas, so each replica must contribute ``1 / replicas`` of
    its loss. Keras divides losses reduced to a mean over the batch itself;
    losses it leaves alone, those that return one number for the whole batch
    (Dice, or a sum over anchors normalised by the number of objects), call
    this. Outside a replica, or without distribution, ``loss`` is returned as it is.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    n = context.num_replicas_in_sync if context is not None else 1
    return loss if n == 1 else loss / n


def processor() -> str:
    """The processor's model name (from ``/proc/cpuinfo``, else the platform's): two models may round
    differently in their vector instructions and so train different networks from the same seed."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """Where a result was measured, in one line: processor, cores, memory, system and Python."""
    memory = ""
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        memory = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    return (
        f"{processor()}, {os.cpu_count()} cores{memory}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def describe_device() -> str:
    """One line naming the profile-relevant hardware, for the top of each chapter.

    On a GPU it also names the precision policy and, with several GPUs, the
    number of replicas (what :func:`setup` chose).
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        line = f"GPU: {', '.join(g.name for g in gpus)}; {keras.mixed_precision.global_policy().name}"
        n = replicas()
        return line + (f", MirroredStrategy over {n} replicas" if n > 1 else "")
    return f"CPU only ({os.cpu_count()} cores)"
