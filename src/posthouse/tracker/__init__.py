"""The activity tracker: follows IMAP accounts (ours or any provider's) and emits
facts (facts.py: a message seen, changed, gone; a folder reset) and nothing else."""
