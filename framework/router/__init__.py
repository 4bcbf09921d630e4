"""The hybrid engine: the facade, its flows (ingest, drain, retrieve), fusion, the outbox, the audit
log, the privacy guard and the policy files.
"""
