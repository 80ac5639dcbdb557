"""The tools' shared error handling: bad input ends in one line on stderr
naming the file (or line, video, blob) and what to do, and a non-zero exit,
never a traceback.

A tool's `main(argv)` is wrapped by `@tool_main("name")`; inside it, code
raises ToolError (or the package's own ValueError subclasses, which the tool
catches) for bad input. OS errors that reach the wrapper (an unwritable
output path, a full disk, a missing file) are reported with the OS's reason.
"""
import errno
import functools
import os
import sys

# Exit status of a refused input (argparse uses 2 for bad flags, too).
EXIT_BAD_INPUT = 2

_ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere, then run again",
    errno.EDQUOT: "free some space or write elsewhere, then run again",
    errno.EACCES: "choose a path you can write to (or fix its permissions)",
    errno.EPERM: "choose a path you can write to (or fix its permissions)",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "the path is a folder; give a file name",
    errno.EEXIST: "a file is in the way; choose another path",
}


class ToolError(Exception):
    """Bad input or an unusable path: the message is the whole report."""

    def __init__(self, message, status=EXIT_BAD_INPUT):
        super().__init__(message)
        self.status = status


def describe_os_error(exc, path=None):
    """One line for an OSError: the file(s), the OS's reason (errno text) and
    advice. `path`: the file being written, for errors that do not carry it
    (a write or close on a full disk)."""
    reason = exc.strerror or str(exc)
    where = exc.filename if exc.filename is not None else path
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    name = errno.errorcode.get(exc.errno, "")
    head = f"{where}: {reason}" if where is not None else reason
    if name:
        head += f" ({name})"
    advice = _ADVICE.get(exc.errno)
    return f"{head}; {advice}" if advice else head


def check_writable(path, what="output"):
    """Refuse early (ToolError) an output path whose folder cannot be created
    or written, before any work is done."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    probe = folder
    while not os.path.exists(probe):  # the first existing ancestor must be writable
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ToolError(f"{what} {path}: {probe} is a file, not a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ToolError(f"{what} {path}: cannot write in {probe} (permission denied); choose a "
                        "path you can write to")


def tool_main(name):
    """Decorator for a tool's main(argv): ToolError and OSError become one
    `<name>: error: ...` line on stderr and a non-zero return."""
    def wrap(main):
        @functools.wraps(main)
        def run(argv=None):
            try:
                return main(argv)
            except ToolError as exc:
                print(f"{name}: error: {exc}", file=sys.stderr)
                return exc.status
            except OSError as exc:
                print(f"{name}: error: {describe_os_error(exc)}", file=sys.stderr)
                return EXIT_BAD_INPUT
        return run
    return wrap
