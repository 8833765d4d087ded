"""Commands beside the server: ``iipy demo``, ``convert``, ``check``, ``static``."""
