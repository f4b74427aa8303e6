"""The ``vidfm`` command. Each command group lives in its own module and registers a
sub-parser; this file only dispatches and turns ``VidfmError`` into a one-line message
with a non-zero exit (no traceback for user mistakes)."""

from __future__ import annotations

import argparse
import os
import sys

from vidfm import __version__
from vidfm.errors import VidfmError


def build_parser() -> argparse.ArgumentParser:
    from vidfm.cli import (
        audio_commands,
        classify_commands,
        compress_commands,
        edit_command,
        generate_commands,
        ground_commands,
        io_commands,
        retrieval_commands,
        serve_command,
        shots_commands,
        summary_commands,
        synth_command,
        videollm_commands,
    )
    from vidfm.cli.common import Parser

    parser = Parser(
        prog="vidfm",
        description="Video foundation models: read, sample, encode, train, understand and generate video.",
        epilog="Run 'vidfm COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"vidfm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    train = sub.add_parser("train", help="train a task model (classify, ground, vae, denoiser, videollm)", description="Train a task model.")
    tsub = train.add_subparsers(dest="objective", metavar="TASK")
    train.set_defaults(run=lambda args: (train.print_help(), 2)[1])
    for module in (synth_command, io_commands, classify_commands, retrieval_commands, shots_commands, ground_commands, generate_commands, edit_command, videollm_commands, serve_command, compress_commands, audio_commands, summary_commands):
        module.register(sub)
        if hasattr(module, "register_train"):
            module.register_train(tsub)
    return parser


def _quiet_hub_progress() -> None:
    """transformers' and diffusers' per-file load/save bars add noise to every command; ours stay."""
    import importlib

    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        try:
            importlib.import_module(name).disable_progress_bar()
        except ImportError:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    _quiet_hub_progress()
    if os.environ.get("RANK", "0") != "0":  # under torchrun, one report (rank 0's); errors still reach stderr
        sys.stdout = open(os.devnull, "w")
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler, not at exit
        return code
    except VidfmError as e:
        print(f"vidfm {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head): not an error
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush does
    not raise again (the recipe in Python's signal documentation)."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
