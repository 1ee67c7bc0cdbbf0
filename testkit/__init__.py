"""Test support that ships with the project: ``hotline bench calls`` (bench), sipp callers
(callers), the replayed Asterisk AMI (ami_replay) and the whole hotline in one process
(stack) that the demo, the soak run and the fault drills drive.

Every fixture comes in as a parameter (the callers' clips, the knowledge base, the AMI
transcript): the ops commands and the tests choose them, nothing here reaches for
``../shared`` on its own.
"""
