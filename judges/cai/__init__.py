"""Constitutional AI: constitutions, critique -> revision, and principle-based preferences."""
