"""config.quiet_tensorflow: TensorFlow's start-up noise is dropped from standard error, real errors are kept."""

import os
import subprocess
import sys

import jupytext
import nbformat
import pytest

from course_utils import build

PROGRAM = r"""
import os, time
from course_utils import config
config.quiet_tensorflow(filter_stderr=True)
assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
os.write(2, b"E0000 00:00:1 cuda_executor.cc:1228] failed call to cuInit: UNKNOWN ERROR (303)\n")
os.write(2, b"E0000 00:00:2 1 node_def_util.cc:] NodeDef mentions attribute use_unbounded_threadpool which is not\n")
os.write(2, b"I0000 00:00:1796185168.694475   26412 port.cc:153] oneDNN custom operations are on.\n")
os.write(2, b"E0000 00:00:3 real_failure.cc:12] Could not allocate the tensor\n")
os.write(2, b"W0000 00:00:4 some_op.cc:7] a real warning\n")
os.write(2, b"a partial line")
time.sleep(1.0)
os.write(2, b", then its end\n")
time.sleep(0.5)
"""


def test_noise_is_dropped_and_real_errors_are_kept():
    env = {"PATH": "/usr/bin:/bin"}  # TF_CPP_MIN_LOG_LEVEL unset
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "cuInit" not in result.stderr and "use_unbounded_threadpool" not in result.stderr
    assert "oneDNN" not in result.stderr
    assert "Could not allocate the tensor" in result.stderr and "a real warning" in result.stderr
    assert "a partial line, then its end\n" in result.stderr  # passed on after a pause, nothing lost


def test_a_plain_script_keeps_its_standard_error_untouched():
    program = (
        "from course_utils import config\nconfig.quiet_tensorflow()\n"
        "import os\nos.write(2, b'failed call to cuInit\\n')"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert "failed call to cuInit" in result.stderr


def executed_text(notebook, folder):
    """The printed outputs of ``notebook`` run by papermill in a kernel with TensorFlow's default logging."""
    nbformat.write(notebook, folder / "x.ipynb")
    # ipykernel shows what the process writes to its file descriptors in the cells, except under pytest.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "TF_ENABLE_ONEDNN", "PYTEST_"))}
    subprocess.run(
        [sys.executable, "-m", "papermill", "-k", "python3", str(folder / "x.ipynb"), str(folder / "out.ipynb")],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    cells = nbformat.read(folder / "out.ipynb", as_version=4).cells
    return "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))


def test_a_generated_notebook_shows_no_tensorflow_start_up_notices(root, tmp_path):
    """The first cell of every generated notebook quietens TensorFlow before a chapter imports it."""
    chapter = jupytext.reads(
        "# %%\nimport keras\nimport tensorflow as tf\nprint(tf.constant(2) * 3)\n", fmt=build.SOURCE_FORMAT
    )
    plain = executed_text(chapter, tmp_path)
    assert "oneDNN" in plain or "cpu_feature_guard" in plain, "this TensorFlow prints no notice: nothing to test"
    text = executed_text(build.colab_notebook(chapter, root, "book/x.ipynb"), tmp_path)
    assert "tf.Tensor(6" in text
    assert "oneDNN" not in text and "cpu_feature_guard" not in text and "absl::InitializeLog" not in text, text


FAULTS_PER_STEP = """
import resource, sys
from course_utils import config, metric_learning as ml
if sys.argv[1] == "fixed":
    assert config.keep_freed_memory(), "not glibc"
else:  # TensorFlow's own mallopt call, as the first fit on a PyDataset makes it
    import tensorflow as tf
    list(tf.data.Dataset.from_generator(lambda: iter([0]), output_signature=tf.TensorSpec((), tf.int32)))
split = ml.scenes_few_labels(size=32, per_class=8, test_per_class=1, held_out="diamond", seed=0)
batches = ml.BalancedBatches(split.x_labelled, split.y_labelled, per_class=16, steps=5, seed=0)
model = ml.embedding_model((32, 32, 3))
ml.fit_embedding(model, batches, ml.SimilaritySoftmaxLoss(0.1), 1)  # traces the training step
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
ml.fit_embedding(model, batches, ml.SimilaritySoftmaxLoss(0.1), 2)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator only")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again():
    """After TensorFlow's generator op freezes glibc's mmap threshold, each step of week 5's embedding faulted in
    ~47,000 fresh pages (half its time); setup's keep_freed_memory undoes that."""
    faults = {}
    for state in ("as TensorFlow leaves it", "fixed"):
        out = subprocess.run(
            [sys.executable, "-c", FAULTS_PER_STEP, state],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        assert out.returncode == 0, out.stderr[-2000:]
        faults[state] = float(out.stdout.split()[-1])
    assert faults["as TensorFlow leaves it"] > 10_000, f"TensorFlow no longer freezes the threshold? {faults}"
    assert faults["fixed"] < faults["as TensorFlow leaves it"] / 5, faults
