"""The settings: one typed table (table.py) of value types (types.py) that generates the
command line, FORKHTTPD_* variables, the TOML file and docs (settings.py). Read by the
master, ops and the CLI only; workers get plain values."""
