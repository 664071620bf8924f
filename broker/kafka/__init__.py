"""Kafka plumbing: the local development broker and the topic contract."""
