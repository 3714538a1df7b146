"""The pure engine: state, touchpoint assessment, metrics, rules, BG/NBD, rows, and the
per-record step. No I/O, no settings object; `runtime` is the Faust edge that drives it."""
