"""The doctor's expert tools, installed as ``agentclinic.tools``."""
