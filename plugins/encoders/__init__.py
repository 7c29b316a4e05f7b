"""Built-in plugins of this kind; each module below registers through harness.hookimpl."""


def checkpoint_due(every: int, at: int, last: int) -> bool:
    """Whether an encoder keeps a checkpoint after epoch or step `at`: every `every` (0: never), and not at
    `last`, whose features are the headline already."""
    return bool(every) and at % every == 0 and at < last
