"""Synthetic scenes: the built-in data of weeks 2-5 (classification, detection,
segmentation, metric learning).

:func:`make_scenes` draws ``n`` RGB images of simple filled shapes on textured,
noisy backgrounds, together with every annotation the course needs, all derived
from the same drawing so they always agree:

* ``images`` -- ``(n, size, size, 3)`` float32 in ``[0, 1]``.
* ``labels`` -- ``(n,)`` int32, the class id of the *largest* object (by pixel
  area) in each image; with ``objects=(1, 1)`` that is the only object. An image
  without objects (possible when ``objects[0] == 0``) has label ``-1``.
* ``boxes`` -- ``(n, max_objects, 4)`` float32 pixel coordinates
  ``[x_min, y_min, x_max, y_max]`` with *exclusive* ``x_max``/``y_max`` (last
  mask column/row + 1), i.e. the Keras ``"xyxy"`` format; equivalently the
  continuous coordinates of the object's outer pixel edges. ``max_objects`` is
  ``objects[1]``; rows after an image's last object are ``-1``.
* ``box_classes`` -- ``(n, max_objects)`` int32 class ids, ``-1`` for padding.
* ``masks`` -- ``(n, size, size)`` uint8, ``0`` for background and
  ``1 + class id`` on the pixels of an object.
* ``class_names`` -- the names of the class ids, ``class_names[k]`` for id ``k``.

The shapes are a filled circle, an axis-aligned square, an equilateral triangle
with a random orientation and a diamond (a square turned by 45 degrees). Objects
never overlap and keep at least one background pixel between their boxes, so
each box is exactly the tight bounding box of that object's mask pixels and the
mask is zero outside the union of the boxes.

Why synthetic? The data are generated in a fraction of a second, need no
download, are identical for every student with the same seed, and the difficulty
can be turned up (more and smaller objects, more noise) to show when a model
starts to struggle. The shape, not the colour, tells the class: every class draws
its colour from the same distribution, chosen to contrast with the background
under the object.

Generation is deterministic: the same arguments (including ``seed``) give
bit-identical arrays on a given installation (another CPU or NumPy build may
round the float pixels differently in the last bits). Only
:func:`numpy.random.default_rng` is used, never the global NumPy random state.
Generating ``n`` images and keeping the first ``k`` is *not* guaranteed to give
the same images as generating ``k``.

It is fast enough to regenerate the data instead of storing it (several
thousand 64x64 images per second on one CPU core): the backgrounds of a whole
batch come from one batched matrix product, and each object is a cached pixel
stencil pasted into its box.

Pure NumPy: importing this package does not import TensorFlow.

The package
-----------
* ``shapes`` -- the shape names and their pixel stencils;
* ``backgrounds`` -- the textured backgrounds of a batch;
* ``validation`` -- the checks of :func:`make_scenes`'s arguments;
* ``generator`` -- :class:`Scenes` and :func:`make_scenes`: placing, painting, noise.
"""

from course_utils.scenes.generator import Scenes, make_scenes
from course_utils.scenes.shapes import EXTRA_SHAPES, SHAPES
