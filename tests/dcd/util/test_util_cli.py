"""dcd.util.cli: every tool's one-line error path."""
import errno

import pytest

from dcd.util import cli


def _tool(exc):
    @cli.tool_main("demo_tool")
    def main(argv=None):
        raise exc
    return main


def test_tool_error_is_one_line_and_its_status(capsys):
    assert _tool(cli.ToolError("list.txt:3: bad label", status=3))([]) == 3
    err = capsys.readouterr().err
    assert err == "demo_tool: error: list.txt:3: bad label\n"


@pytest.mark.parametrize("code, text", [(errno.ENOSPC, "No space left on device (ENOSPC); free"),
                                         (errno.EACCES, "Permission denied (EACCES); choose")])
def test_os_errors_name_the_file_and_the_os_reason(capsys, code, text):
    import os
    exc = OSError(code, os.strerror(code), "/out/scores.npz")
    assert _tool(exc)([]) == cli.EXIT_BAD_INPUT
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("demo_tool: error: /out/scores.npz: ") and text in line


def test_real_unwritable_path(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")

    @cli.tool_main("demo_tool")
    def main(argv=None):
        (blocker / "out.txt").write_text("never")

    assert main([]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert str(blocker / "out.txt") in line and "ENOTDIR" in line
    with pytest.raises(cli.ToolError, match="is a file, not a folder"):
        cli.check_writable(blocker / "sub" / "out.npz")
    cli.check_writable(tmp_path / "new" / "out.npz")  # a folder still to be made is fine


def test_other_exceptions_are_not_hidden():
    with pytest.raises(KeyError):
        _tool(KeyError("a bug"))([])
