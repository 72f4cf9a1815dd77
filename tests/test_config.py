"""config.quiet_tensorflow: TensorFlow's start-up noise is dropped from standard error, real errors are kept."""

import os
import subprocess
import sys

import jupytext
import nbformat

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
    program = "from course_utils import config\nconfig.quiet_tensorflow()\nimport os\nos.write(2, b'failed call to cuInit\\n')"
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert "failed call to cuInit" in result.stderr


def executed_text(notebook, folder):
    """The printed outputs of ``notebook`` run by papermill in a kernel with TensorFlow's default logging."""
    nbformat.write(notebook, folder / "x.ipynb")
    # ipykernel shows what the process writes to its file descriptors in the cells, except under pytest.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "TF_ENABLE_ONEDNN", "PYTEST_"))}
    subprocess.run([sys.executable, "-m", "papermill", "-k", "python3", str(folder / "x.ipynb"),
                    str(folder / "out.ipynb")], env=env, check=True, capture_output=True, timeout=300)
    cells = nbformat.read(folder / "out.ipynb", as_version=4).cells
    return "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))


def test_a_generated_notebook_shows_no_tensorflow_start_up_notices(root, tmp_path):
    """The first cell of every generated notebook quietens TensorFlow before a chapter imports it."""
    chapter = jupytext.reads("# %%\nimport keras\nimport tensorflow as tf\nprint(tf.constant(2) * 3)\n",
                             fmt=build.SOURCE_FORMAT)
    plain = executed_text(chapter, tmp_path)
    assert "oneDNN" in plain or "cpu_feature_guard" in plain, "this TensorFlow prints no notice: nothing to test"
    text = executed_text(build.colab_notebook(chapter, root, "book/x.ipynb"), tmp_path)
    assert "tf.Tensor(6" in text
    assert "oneDNN" not in text and "cpu_feature_guard" not in text and "absl::InitializeLog" not in text, text
