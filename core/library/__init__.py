"""A library's mood map: a folder of songs scored into Parquet (scan, store), explored on the
Library page (explore, plots). `python -m core.library scan DIR --out library.parquet`."""
