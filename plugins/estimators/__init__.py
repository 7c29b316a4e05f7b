"""Built-in plugins of this kind; each module below registers through harness.hookimpl."""
