"""Reading data: fetch from TSETMC, parse the export formats, ingest, validate, merge, and
the synthetic sample."""
