"""The agents of an episode (patient, measurement, doctors, judge), installed as ``agentclinic.agents``."""
