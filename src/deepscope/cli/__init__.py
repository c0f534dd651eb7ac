"""The ``deepscope`` command line: a thin layer over the library (see :mod:`deepscope.cli.app`)."""
