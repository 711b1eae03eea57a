"""exls login flow: workload identity (a CI job trades its own OIDC token)."""
