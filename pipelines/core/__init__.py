"""The shared core: typed parameters and file names, errors, atomic file writes, provenance,
the devices (GPU or CPU), HTML pages and their templates."""
