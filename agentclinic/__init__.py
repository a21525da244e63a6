"""agentclinic: an agentic clinical simulation environment."""

from agentclinic.errors import AgentClinicError, ConfigError, ScenarioError
from agentclinic.scenario import Scenario, ScenarioSet, load_scenarios
from agentclinic import env as _env  # noqa: F401,E402  (registers agentclinic/Clinic-v0 with gymnasium)

__version__ = "0.1.0"

__all__ = ["AgentClinicError", "ConfigError", "Scenario", "ScenarioError", "ScenarioSet", "load_scenarios",
           "__version__"]
