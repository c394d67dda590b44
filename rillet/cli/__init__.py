"""The ``rillet`` command line."""
