"""Self-healing pipelines: what JulesFixNotifier reads, writes and asks (docs: "Self-healing pipelines")."""
