"""The relay function deployed to Function Compute, and the code that packages it.

``handler.py`` is deployed alone, so it uses the standard library only; ``package.py`` builds
its ZIP and events. Imports nothing of aliasync.
"""
