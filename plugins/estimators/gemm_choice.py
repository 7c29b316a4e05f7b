"""MI_HARNESS_CPU_GEMM: which CPU matmul kernel large grouped layers use (auto, torch, onednn).

Read without torch, so the variational estimators check it when they register: a typo then
stops a run before its first cell (their plugin is reported broken, naming the variable), not
inside a large layer.
"""

from __future__ import annotations

import os

from harness.errors import UserError

VARIABLE = "MI_HARNESS_CPU_GEMM"
CHOICES = ("auto", "torch", "onednn")


def chosen_by_user() -> str:
    choice = os.environ.get(VARIABLE, "auto")
    if choice not in CHOICES:
        raise UserError(f"{VARIABLE}={choice!r} is not a kernel choice; valid: {', '.join(CHOICES)}.")
    return choice
