"""RLAIF rounds: sample candidates from the policy, turn them into preferences, run a round."""
