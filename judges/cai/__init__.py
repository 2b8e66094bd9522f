"""Constitutional AI: constitutions, critique -> revision loops, principle-based preferences.

``constitutions`` loads and versions the YAML files (``importers`` reads other
formats); ``prompts`` and ``parsing`` are what the CAI calls ask and how their
answers are read; ``protocol`` runs the calls through the core retry loop.
"""
