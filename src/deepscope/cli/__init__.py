"""The ``deepscope`` command line: a thin layer over the library (see :mod:`deepscope.cli.app`).

Imports: ``cli`` is the top of deepscope's package graph: it imports the library packages (and
``tasks``, the built-in task plugins); nothing imports it.
"""
