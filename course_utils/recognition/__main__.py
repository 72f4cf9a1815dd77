"""``python -m course_utils.recognition pretrain-source [--out PATH]``: regenerate the shipped source-task weights."""

from __future__ import annotations

import argparse

from course_utils import config
from course_utils.recognition.source_weights import SOURCE_SHA256, SOURCE_WEIGHTS
from course_utils.recognition.transfer import pretrain_source


def main(argv=None) -> int:
    """Parse the command line and run the command (``pretrain-source``, the only one); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.recognition",
        description="Week 2 tools: regenerate the shipped source-task weights.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    pretrain = commands.add_parser("pretrain-source", help="pretrain MobileNetV2 on the source shapes, save the base")
    pretrain.add_argument("--out", default=None, help=f"weights file (default: {SOURCE_WEIGHTS})")
    args = parser.parse_args(argv)
    config.setup("cpu", seed=0)
    result = pretrain_source(args.out)
    if result["sha256"] != SOURCE_SHA256:
        print(
            "The hash differs from SOURCE_SHA256 in course_utils/recognition/source_weights.py: "
            "update it if you ship this file."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
