"""`mi-harness ARGS` through harness.cli.main() in this process, for tests that need many quick runs."""

import sys

from harness.cli import main


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Its exit code and everything it printed (stdout, then stderr)."""
    monkeypatch.setattr(sys, "argv", ["mi-harness", *args])
    try:
        main()
        code = 0
    except SystemExit as exited:
        code = exited.code if isinstance(exited.code, int) else 1
    out = capsys.readouterr()
    return code, out.out + out.err
