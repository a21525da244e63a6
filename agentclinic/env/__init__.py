"""The environment: typed actions, the ledger, the async clinic and its Gymnasium face."""

import gymnasium

from agentclinic.env.actions import Action, ActionError, action_tools, parse_action
from agentclinic.env.clinic import Clinic, StepResult
from agentclinic.env.ledger import Budget, Ledger

ENV_ID = "agentclinic/Clinic-v0"  # observations as text
MESSAGES_ENV_ID = "agentclinic/ClinicMessages-v0"  # observations as the whole conversation's chat messages
ENV_IDS = (ENV_ID, MESSAGES_ENV_ID)
for _id, _kwargs in ((ENV_ID, {}), (MESSAGES_ENV_ID, {"obs_mode": "messages"})):
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point="agentclinic.env.gym:ClinicEnv", kwargs=_kwargs)

__all__ = ["ENV_ID", "ENV_IDS", "MESSAGES_ENV_ID", "Action", "ActionError", "Budget", "Clinic", "Ledger", "StepResult",
           "action_tools", "parse_action"]
