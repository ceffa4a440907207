"""``reglab`` command line: train | demo | evaluate | predict | report | study | sweep | worker | data inspect.

Exit codes: 0 success, 2 a user error (one line on stderr naming the file or key), 1 a bug,
130 interrupted. The same idea has the same option everywhere: ``--out`` what a command writes,
``--quiet`` no progress, ``--device`` where a model runs, ``--json PATH`` what the terminal shows
as JSON for scripts.
"""

from __future__ import annotations

import os
import sys
import traceback

from ..errors import UserError
from .parser import build_parser


def parse(argv: list[str] | None):
    """The command line, with KEY=VALUE overrides accepted after options too
    (``reglab train r.yaml --out runs/a train.seed=1``), as argparse alone does not."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    actions = {"study": ("run", "show", "list"), "sweep": ("run", "show", "confirm")}
    for position, token in enumerate(argv[:-1]):
        if token in actions and argv[position + 1] not in (*actions[token], "-h", "--help"):  # `reglab study RECIPE`: study run
            argv.insert(position + 1, "run")
            break
        if not token.startswith("-"):
            break
    args, extra = parser.parse_known_args(argv)
    if extra and (not hasattr(args, "overrides") or any(token.startswith("-") or "=" not in token for token in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides += extra
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if os.environ.get("REGLAB_KEEP_FREED_MEMORY", "1") != "0":
        from ..allocator import keep_freed_memory

        keep_freed_memory()  # up to 1.35x faster steps at larger batches on glibc (benchmarks/allocator.py)
    try:
        if getattr(args, "resume", False) and not args.out:
            raise UserError("--resume needs --out RUN_DIR: the run to continue")
        args.func(args)
    except UserError as exc:
        print(f"reglab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reglab: interrupted; finished epochs and checkpoints are in the run directory", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's fault
        if os.environ.get("REGLAB_DEBUG"):
            traceback.print_exc()
        print(f"reglab: internal error: {type(exc).__name__}: {exc} (set REGLAB_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    return 0
