"""The command line: argument parsing, the live progress view, tables and JSON output.

Thin adapters over the lifecycle and pipeline coroutines, and the only layer that prints. May
import every layer below it, and the emulator (lazily) for ``--sim`` and ``aliasync sim``.
"""
