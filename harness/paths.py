"""Where results go unless told otherwise: the store and the reports folder, relative to the working folder."""

STORE_VARIABLE = "MI_HARNESS_STORE"
DEFAULT_STORE = "results/mi-harness.sqlite"
DEFAULT_REPORTS = "reports"
