"""Commands beside the server (``iipy demo``; later convert, check, static)."""
