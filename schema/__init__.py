"""The radbill data model: tables, migrations, engines and shared records.

Nothing here imports the other radbill packages; they all import this one.
"""
