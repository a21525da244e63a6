"""Adapters for training doctor policies with other libraries (each imported only when used).

* ``agentclinic.train.trl_grpo``: TRL's ``GRPOTrainer`` with agentclinic episodes as multi-turn rollouts
  (``pip install agentclinic[rl]``).
* ``agentclinic.train.tiny``: a tiny byte-level chat tokenizer and random Llama, for smoke runs without weights.
"""
