"""Failure handling across ranks: no hangs, clear messages, non-zero exit.

Two kinds of failure:
- *Argument errors* (more ranks than rows, unknown device, GPU requested without one) are
  detected collectively: every rank runs the check, the outcomes are all-gathered, and
  every rank raises the same ``CollectiveError`` (so every rank prints the same first line
  and exits non-zero; nobody is left waiting in a collective).
- *Unexpected exceptions* on one rank: the others may already be blocked in a collective,
  so the failing rank prints rank, host and traceback to stderr and calls
  ``comm.Abort(1)``, which ends the whole job with a non-zero status.
"""
from __future__ import annotations

import socket
import sys
import traceback
from typing import Any, Callable, NoReturn, TypeVar

T = TypeVar("T")


class CollectiveError(RuntimeError):
    """A check failed on at least one rank; raised on every rank with the same message."""


def where(comm: Any) -> str:
    return f"rank {comm.Get_rank()}/{comm.Get_size()} on {socket.gethostname()}"


def collective_check(comm: Any, func: Callable[[], T],
                     errors: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Run ``func`` on every rank; if it raised ``errors`` on any rank, raise
    ``CollectiveError`` on every rank naming each failing rank and its message.

    ``func`` may itself be collective only if it cannot raise before its collectives.
    """
    result: Any = None
    message = None
    try:
        result = func()
    except errors as exc:
        message = f"{where(comm)}: {exc}"
    messages = comm.allgather(message)
    failed = [m for m in messages if m]
    if failed:
        texts = {m.split(": ", 1)[1] for m in failed}
        if len(failed) == len(messages) and len(texts) == 1:
            raise CollectiveError(f"{texts.pop()} (on all {len(messages)} ranks)")
        raise CollectiveError("; ".join(failed))
    return result


def abort(comm: Any, exc: BaseException, code: int = 1) -> NoReturn:
    """Report ``exc`` (rank, host, traceback) on stderr and abort every rank of ``comm``."""
    head = f"hpc scale: error: {where(comm)} failed: {type(exc).__name__}: {exc}"
    body = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(f"{head}\n{body}{head} -> aborting all ranks\n")
    sys.stderr.flush()
    comm.Abort(code)
    raise SystemExit(code)  # pragma: no cover - Abort does not return


def run_or_abort(comm: Any, func: Callable[[], T], passthrough: tuple[type[BaseException], ...] = ()) -> T:
    """``func()``, or abort the job if it raises anything but ``passthrough`` exceptions
    (those are raised identically on every rank by construction, e.g. CollectiveError)."""
    try:
        return func()
    except passthrough:
        raise
    except BaseException as exc:  # noqa: BLE001 - any escape would leave peers hanging
        if isinstance(exc, SystemExit) and not exc.code:
            raise
        abort(comm, exc)
