"""The pure engine (state, touchpoint assessment, metrics, rules, BG/NBD) and the Faust runtime."""
