"""The maintainers' command line, ``python -m course_utils.build`` (see :mod:`course_utils.build`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from course_utils.build.book import BUILD_SOURCE, build_book, render_html, stage_book
from course_utils.build.notebooks import release_problems, sync


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.build",
        description="Generate the exercises and Colab notebooks, execute the chapters, build the book.",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: current folder)")
    commands = parser.add_subparsers(dest="command", required=True)
    sync_cmd = commands.add_parser("sync", help="regenerate exercises/ and the Colab .ipynb files")
    sync_cmd.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    release_cmd = commands.add_parser("release-check", help="whether this tree can be released as TAG; exit 1 if not")
    release_cmd.add_argument("tag", help="the git tag, v + the version in pyproject.toml (e.g. v0.1.0)")
    for name, text in [
        ("book", "execute every chapter with papermill, then build the HTML book"),
        ("execute", "only execute every chapter into _build/book_src (e.g. to check it with nbval)"),
        ("html", "only render _build/book_src, executed before, to _build/html"),
    ]:
        command = commands.add_parser(name, help=text)
        if name != "html":
            command.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "gpu"))
            command.add_argument(
                "--strict",
                action="store_true",
                help="fail on a claim of the text that the run breaks (benchmarks, CI, releases); "
                "without it, each is a warning on its page and in the summary",
            )
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    root = args.root.resolve()
    if args.command == "sync":
        changed = sync(root, check=args.check)
        for path in changed:
            print(("stale: " if args.check else "wrote: ") + str(path))
        if args.check and changed:
            print("Run `python -m course_utils.build sync` to regenerate them.")
            return 1
        return 0
    if args.command == "release-check":
        problems = release_problems(root, args.tag)
        for problem in problems:
            print(f"cannot release {args.tag}: {problem}")
        return 1 if problems else 0
    stale = sync(root, check=True)
    if stale:
        print("Generated files are out of date: " + ", ".join(map(str, stale)))
        print("Run `python -m course_utils.build sync` first.")
        return 1
    if args.command == "book":
        print(f"Book written to {build_book(root, args.profile, strict=args.strict)}")
    elif args.command == "execute":
        stage_book(root, args.profile, root / BUILD_SOURCE, strict=args.strict)
    else:
        print(f"Book written to {render_html(root / '_build')}")
    return 0
