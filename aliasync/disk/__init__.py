"""Disk inspection: partition tables, FAT filesystems and EFI loaders, container formats.

A leaf: imports nothing of aliasync but ``aliasync._exceptions``.
"""
