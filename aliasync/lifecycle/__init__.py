"""The lifecycle commands: account setup, the regions report, list, delete, prune, publish,
deprecate, and the release tables.

May import the pipeline (region detection, reports), the cloud clients and
``aliasync._exceptions``; never the command line or the emulator.
"""
