"""jobqueue: background jobs that survive deploys."""
