"""Human review queues: made from the CLI or HTTP, served to reviewers, answers become gold."""
