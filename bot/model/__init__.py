"""The typed results services return and blocks render: dataclasses and enums, no I/O.

Blocks import from here, never from services or storage: what a screen shows is decided by the
service that builds the result, and a block only lays it out. The persisted enums (key status,
purpose, type; incident state) are the storage's own and are re-exported by the modules here.
"""
