"""Adapters for the AgentClinic case files (MedQA and NEJM JSONL)."""
