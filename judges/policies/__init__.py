"""Policies: the model being trained, sampled for on-policy candidates.

A policy is named like a judge, ``provider:model``: ``openai:<model>`` (with
a ``base_url``, any OpenAI-compatible server such as vLLM serving the
checkpoint being trained), ``anthropic:<model>``, or ``local:<causal LM>``
sampled in this process. :mod:`judges.policies.base` holds the contract and
the pure helpers (request plans, seeds, usage shares, the retry loop);
:mod:`judges.policies.registry` builds a policy from its configuration.
The backends live beside the judges' in :mod:`judges.backends`, sharing
their SDK error translation and in-process batching.
"""
