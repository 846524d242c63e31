"""The import pipeline: the orchestrator, each region's plan and strategy (direct, relay,
copy), copy sources, upload slots, the run's state and journal, and the reports.

May import the cloud clients, disk inspection, the relay package and ``aliasync._exceptions``;
never the command line, the lifecycle commands or the emulator.
"""
