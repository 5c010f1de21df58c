"""Readers of finished work: run directories into tables and figures (`table`, `plot`).

Everything here reads run directories (and bench JSON) and nothing else: no task, model or
kernel is imported, so a table can be made on a laptop from runs copied off a GPU machine.
"""
