"""agentclinic: an agentic clinical simulation environment."""

from agentclinic.errors import AgentClinicError, ConfigError, ScenarioError
from agentclinic.scenario import Scenario, ScenarioSet, load_scenarios

__version__ = "0.1.0"

__all__ = ["AgentClinicError", "ConfigError", "Scenario", "ScenarioError", "ScenarioSet", "load_scenarios",
           "__version__"]
