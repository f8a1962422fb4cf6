"""The error convention shared by the s2s-ft scripts: `UsageError`, `run_cli` and `check_utf8` of `seq2seq_checks`.

`seq2seq_checks.py` is the folder's copy of the project-wide module (next to the scripts, kept identical by
`utils/check_copies.py`), so the package and the scripts raise and catch one `UsageError` class. It is importable
wherever `s2s_ft` is: both live in `examples/pytorch/s2s-ft/`, the scripts' folder.
"""

from seq2seq_checks import UsageError, check_utf8, run_cli

__all__ = ["UsageError", "check_utf8", "run_cli"]
