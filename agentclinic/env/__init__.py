"""The environment: typed actions, the ledger, the async clinic and its Gymnasium face."""

import gymnasium

from agentclinic.env.actions import Action, ActionError, action_tools, parse_action
from agentclinic.env.clinic import Clinic, StepResult
from agentclinic.env.ledger import Budget, Ledger

ENV_ID = "agentclinic/Clinic-v0"
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="agentclinic.env.gym:ClinicEnv")

__all__ = ["ENV_ID", "Action", "ActionError", "Budget", "Clinic", "Ledger", "StepResult", "action_tools",
           "parse_action"]
