"""Conveyor's shared library: settings, database, job kinds, task names, logging.

The API and the worker import from here; this package imports neither of them.
"""

__version__ = "0.1.0"
