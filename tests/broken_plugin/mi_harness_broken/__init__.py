"""Plugins that go wrong the ways real ones do: at import, while registering, with a misspelled hook."""
